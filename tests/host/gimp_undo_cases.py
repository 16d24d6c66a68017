# ruff: noqa: F821  (GIMP puts Gimp, Gegl, Gio in this script's globals)
# python-fu-eval batch for the GUI GIMP (gimp-3.0 under Xvfb) in tests/host/test_gimp_plugin.py:
# Undo after plug-in-sfumato-select. gimp-console cannot undo (GIMP 3.0's PDB has no undo
# call), so the image is shown in a window and the test presses Ctrl+Z on it, as an artist
# does: after each step this writes $SFUMATO_UNDO_OUT/ready_<step> and waits for
# sent_<step>. Writes result.json and, per step, selection_{before,after,undone}_<step>.raw
# ("Y u8" over the canvas).
import json
import os
import time

OUT = os.environ["SFUMATO_UNDO_OUT"]
with open(os.environ["SFUMATO_UNDO_CASE"]) as case_file:
    CASE = json.load(case_file)
WAIT_S = 60


def load(path):
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))


def selection_bytes(image):
    rect = Gegl.Rectangle.new(0, 0, image.get_width(), image.get_height())
    return bytes(image.get_selection().get_buffer().get(rect, 1.0, "Y u8",
                                                        Gegl.AbyssPolicy.NONE))


def pixels(layer):
    return bytes(layer.get_buffer().get(
        Gegl.Rectangle.new(0, 0, layer.get_width(), layer.get_height()), 1.0, "R'G'B'A u8",
        Gegl.AbyssPolicy.NONE))


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def undo_by_hand(step):
    """Ask the test for Ctrl+Z on the image window; wait until it says it pressed it."""
    Gimp.displays_flush()
    write(f"ready_{step}", b"")
    deadline = time.monotonic() + WAIT_S
    while not os.path.exists(os.path.join(OUT, f"sent_{step}")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no Ctrl+Z for step {step}")
        time.sleep(0.05)
    time.sleep(1.0)  # GIMP's UI handles the key between our PDB calls


def select(image, source, output):
    proc = Gimp.get_pdb().lookup_procedure("plug-in-sfumato-select")
    config = proc.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [source])
    for name, value in {**CASE["args"], "output": output}.items():
        config.set_property(name, value)
    result = proc.run(config)
    ok = result.index(0) == Gimp.PDBStatusType.SUCCESS
    return ok, "" if ok else Gimp.get_pdb().get_last_error()


report = {}
image = load(CASE["background"])
source = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image,
                              Gio.File.new_for_path(CASE["source"]))
image.insert_layer(source, None, 0)
source.set_name("source")
source.set_offsets(*CASE["offset"])
image.set_selected_layers([source])
image.select_rectangle(Gimp.ChannelOps.REPLACE, *CASE["selection"])  # the rough selection
display = Gimp.Display.new(image)
try:
    for step, output in enumerate(("selection", "layer")):
        ids = [layer.get_id() for layer in image.get_layers()]
        source_before = pixels(source)
        write(f"selection_before_{step}.raw", selection_bytes(image))
        ok, message = select(image, source, output)
        write(f"selection_after_{step}.raw", selection_bytes(image))
        added = [layer.get_name() for layer in image.get_layers() if layer.get_id() not in ids]
        undo_by_hand(step)
        write(f"selection_undone_{step}.raw", selection_bytes(image))
        report[output] = {
            "ok": ok, "message": message, "added": added,
            "layers_after_undo": [layer.get_id() for layer in image.get_layers()] == ids,
            "source_unchanged": pixels(source) == source_before,
        }
finally:
    with open(os.path.join(OUT, "result.json"), "w") as f:
        json.dump(report, f, indent=1)
    display.delete()
    image.delete()
