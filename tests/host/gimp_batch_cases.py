# ruff: noqa: F821  (GIMP puts Gimp, Gegl, Gio in this script's globals)
# python-fu-eval batch for tests/host/test_gimp_plugin.py: many cases in ONE GIMP launch.
#
# GIMP evaluates this file with Gimp, Gegl, Gio, GLib... already in its globals. It reads the
# case list from $SFUMATO_CASES (JSON), runs each case's procedure as a script would, and
# writes, per case, into $SFUMATO_CASES_OUT/<case name>/:
#   result.json            status, error message, seconds, image, layer and selection facts
#                          (a case's "layers" are added below the source first; an argument
#                          "@layer:NAME" is that layer, for layer arguments)
#   composite_before.raw   the visible image before the call  } in the image's precision:
#   composite_after.raw    ... and after                      } R'G'B'A u8 / u16, RGBA float
#   source_after.raw       the source layer after the call
#   new_<i>.raw            each layer the call added, top first
#   selection_after.raw    the selection after the call, "Y u8" over the canvas
#   channel_<i>.raw        each channel the call added, "Y u8" over the canvas
#   composite.png          PNG export of the result (8-bit images)
# A case that raises records its traceback in result.json and the next case still runs.
import json
import os
import time
import traceback

with open(os.environ["SFUMATO_CASES"]) as cases_file:
    CASES = json.load(cases_file)
OUT = os.environ["SFUMATO_CASES_OUT"]
PDB = Gimp.get_pdb()
PRECISIONS = {
    "u8": Gimp.Precision.U8_NON_LINEAR,
    "u16": Gimp.Precision.U16_NON_LINEAR,
    "float": Gimp.Precision.FLOAT_LINEAR,
}
FORMATS = {"u8": "R'G'B'A u8", "u16": "R'G'B'A u16", "float": "RGBA float"}
FEATHER = 6.0


def load(path):
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))


def build_image(case):
    """The background PNG as the image; the source PNG as a layer on top at `offset`."""
    image = load(case["background"])
    source = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image,
                                  Gio.File.new_for_path(case["source"]))
    image.insert_layer(source, None, 0)
    source.set_name("source")
    source.set_offsets(*case["offset"])
    if case["precision"] != "u8":
        image.convert_precision(PRECISIONS[case["precision"]])
    if case.get("mode") == "gray":
        image.convert_grayscale()
    elif case.get("mode") == "indexed":
        image.convert_indexed(Gimp.ConvertDitherType.NONE, Gimp.ConvertPaletteType.GENERATE,
                              64, False, False, "")
    for extra in case.get("layers", []):  # other layers (control images...) below the source
        layer = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image,
                                     Gio.File.new_for_path(extra["png"]))
        image.insert_layer(layer, None, 1)
        layer.set_name(extra["name"])
        layer.set_offsets(*extra["offset"])
    image.set_selected_layers([source])
    paths = []
    for index, points in enumerate(case.get("paths", [])):  # polylines, image coordinates
        path = Gimp.Path.new(image, f"path {index}")
        stroke = path.bezier_stroke_new_moveto(*points[0])
        for point in points[1:]:
            path.bezier_stroke_lineto(stroke, *point)
        image.insert_path(path, None, index)
        paths.append(path)
    if paths:
        image.set_selected_paths(paths)
    sel = case.get("selection")
    if sel is None:
        Gimp.Selection.none(image)
    elif sel["shape"] == "ellipse":
        image.select_ellipse(Gimp.ChannelOps.REPLACE, *sel["rect"])
    else:
        image.select_rectangle(Gimp.ChannelOps.REPLACE, *sel["rect"])
        if sel["shape"] == "feathered":  # a soft edge reaching FEATHER px past the rectangle
            Gimp.Selection.feather(image, FEATHER)
    return image, source


def selection_box(image):
    """GIMP's own bounds of the selection, [x1, y1, x2, y2] in image coordinates, or None."""
    _, non_empty, x1, y1, x2, y2 = Gimp.Selection.bounds(image)
    return [x1, y1, x2, y2] if non_empty else None


def read(drawable, fmt, rect=None):
    if rect is None:
        rect = Gegl.Rectangle.new(0, 0, drawable.get_width(), drawable.get_height())
    return bytes(drawable.get_buffer().get(rect, 1.0, fmt, Gegl.AbyssPolicy.NONE))


def visible(image, fmt):
    layer = Gimp.Layer.new_from_visible(image, image, "visible")
    try:
        return read(layer, fmt)
    finally:
        layer.delete()


def selection_bytes(image):
    rect = Gegl.Rectangle.new(0, 0, image.get_width(), image.get_height())
    return bytes(image.get_selection().get_buffer().get(rect, 1.0, "Y u8",
                                                        Gegl.AbyssPolicy.NONE))


def layer_facts(image):
    facts = []
    for position, layer in enumerate(image.get_layers()):
        facts.append({"name": layer.get_name(), "offsets": list(layer.get_offsets()[1:]),
                      "size": [layer.get_width(), layer.get_height()], "position": position,
                      "id": layer.get_id()})
    return facts


def call(image, source, case):
    proc = PDB.lookup_procedure(case["procedure"])
    if proc is None:
        raise RuntimeError(f"{case['procedure']} is not registered: is the plug-in installed "
                           "as plug-ins/sfumato_gimp/sfumato_gimp.py, executable?")
    config = proc.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [source])
    for name, value in case["args"].items():
        if isinstance(value, str) and value.startswith("@layer:"):  # a layer argument
            value = image.get_layer_by_name(value[len("@layer:"):])
        config.set_property(name, value)
    started = time.monotonic()
    result = proc.run(config)
    seconds = time.monotonic() - started
    status = result.index(0)
    message = "" if status == Gimp.PDBStatusType.SUCCESS else PDB.get_last_error()
    return status.value_nick, message, seconds


def run_case(case, folder):
    image, source = build_image(case)
    fmt = FORMATS[case["precision"]]
    try:
        before_ids = {layer.get_id() for layer in image.get_layers()}
        source_before = read(source, fmt)
        source_offsets = list(source.get_offsets()[1:])
        selection_before = selection_bytes(image)
        box_before = selection_box(image)
        with open(os.path.join(folder, "composite_before.raw"), "wb") as f:
            f.write(visible(image, fmt))
        channels_before = {channel.get_id() for channel in image.get_channels()}
        status, message, seconds = call(image, source, case)
        with open(os.path.join(folder, "selection_after.raw"), "wb") as f:
            f.write(selection_bytes(image))  # "Y u8", the canvas's size
        channels = [channel for channel in image.get_channels()
                    if channel.get_id() not in channels_before]
        for index, channel in enumerate(channels):
            with open(os.path.join(folder, f"channel_{index}.raw"), "wb") as f:
                f.write(bytes(channel.get_buffer().get(
                    Gegl.Rectangle.new(0, 0, image.get_width(), image.get_height()), 1.0,
                    "Y u8", Gegl.AbyssPolicy.NONE)))
        new = [layer for layer in image.get_layers() if layer.get_id() not in before_ids]
        then = None
        if case.get("then") and new:  # a second procedure, run on the newest layer
            ids = {layer.get_id() for layer in image.get_layers()}
            then_status, then_message, _ = call(image, new[0], {**case, **case["then"]})
            added = [layer for layer in image.get_layers() if layer.get_id() not in ids]
            then = {"status": then_status, "message": then_message,
                    "new_layers": [layer.get_name() for layer in added],
                    "recipes": [recipe_of(layer) for layer in added]}
        for index, layer in enumerate(new):
            with open(os.path.join(folder, f"new_{index}.raw"), "wb") as f:
                f.write(read(layer, fmt))
        with open(os.path.join(folder, "source_after.raw"), "wb") as f:
            f.write(read(source, fmt))
        with open(os.path.join(folder, "composite_after.raw"), "wb") as f:
            f.write(visible(image, fmt))
        if case["precision"] == "u8":
            Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image,
                           Gio.File.new_for_path(os.path.join(folder, "composite.png")), None)
        scaled = [image.get_width(), image.get_height()] != case["canvas"]
        kept = recipes_saved_and_reopened(image, new, folder) if case.get("xcf") else None
        return {
            "recipes": [recipe_of(layer) for layer in new], "recipes_reopened": kept,
            "then": then,
            "status": status, "message": message, "seconds": seconds,
            "image_size": [image.get_width(), image.get_height()],
            "precision": image.get_precision().value_nick,
            "base_type": image.get_base_type().value_nick,
            "layers": layer_facts(image),
            "new_layers": [layer.get_name() for layer in new],
            "new_channels": [channel.get_name() for channel in channels],
            "source_position": image.get_item_position(source),
            # a Scale Image rescales the source too; otherwise it must be byte-identical
            "source_unchanged": scaled or read(source, fmt) == source_before,
            "source_offsets_before": source_offsets,
            "selection_box_before": box_before,
            "selection_unchanged": scaled or selection_bytes(image) == selection_before,
        }
    finally:
        image.delete()  # else GIMP notes "a stray image seems to have been left around"


def recipe_of(layer):
    """The sfumato-recipe parasite's text (issue 19), or None."""
    parasite = layer.get_parasite("sfumato-recipe")
    return None if parasite is None else bytes(parasite.get_data()).decode()


def recipes_saved_and_reopened(image, new, folder):
    """Save as .xcf, open it again: each new layer's recipe, by name, as read back."""
    path = os.path.join(folder, "saved.xcf")
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(path), None)
    reopened = load(path)
    try:
        return {layer.get_name(): recipe_of(reopened.get_layer_by_name(layer.get_name()))
                for layer in new}
    finally:
        reopened.delete()


for case in CASES:
    folder = os.path.join(OUT, case["name"])
    os.makedirs(folder, exist_ok=True)
    try:
        report = run_case(case, folder)
    except Exception:
        report = {"error": traceback.format_exc()}
    with open(os.path.join(folder, "result.json"), "w") as f:
        json.dump(report, f, indent=1)
