"""kritarunner module for tests/host/test_krita_host_api.py: the plug-in's KritaHost against
real Krita documents, with no window (so no view: layers go in through addChildNode).

    run-kritarunner.sh --pythonpath tests/host --pythonpath RESOURCES/pykrita \
        -s krita_runner_cases -f main OUT IN8.png ENDPOINT

Deeper formats are made by Krita's own colour conversion of the 8-bit image (opening a 16-bit
PNG in kritarunner waits on a dialog no one can see).

Writes OUT/report.json and raw pixel dumps; every case runs even when one before it raised.
"""

import json
import os
import sys
import traceback
from array import array

SRGB_TRC = "sRGB-elle-V2-srgbtrc.icc"
LINEAR = "sRGB-elle-V2-g10.icc"


def main(args):
    out, png8, endpoint = args
    import sfumato_krita  # noqa: F401 - puts its vendored bridge on the path, as in Krita
    from krita import Krita

    app = Krita.instance()
    report = {}
    cases = {
        "u16": lambda: _converted(app, out, png8, "U16", SRGB_TRC, "RGBA16"),
        "u16_as8": lambda: _converted(app, out, png8, "U16", SRGB_TRC, "RGBA8"),
        "u16_linear": lambda: _converted(app, out, png8, "U16", LINEAR, "RGBA16"),
        "f32": lambda: _converted(app, out, png8, "F32", LINEAR, "RGBAF32"),
        "f32_as_16": lambda: _converted(app, out, png8, "F32", LINEAR, "RGBA16"),
        "f16": lambda: _converted(app, out, png8, "F16", LINEAR, "RGBAF32"),
        "f32_write": lambda: _write_float(app, out, png8),
        "selection": lambda: _selection(app, png8),
        "add_layer": lambda: _add_layer(app, out, png8),
        "select_subject": lambda: _select(app, out, png8, endpoint, "subject", False),
        "select_in_selection": lambda: _select(app, out, png8, endpoint, "selection", False),
        "select_as_mask": lambda: _select(app, out, png8, endpoint, "subject", True),
        "select_words_on_sam2": lambda: _select(app, out, png8, endpoint, "words", False),
        "recipe_kra": lambda: _recipe_through_kra(app, out, png8, endpoint),
        "cmyk": lambda: _refused(app, endpoint, "CMYKA", "U8"),
        "lab": lambda: _refused(app, endpoint, "LABA", "U16"),
    }
    for name, case in cases.items():
        print(f"case {name}", file=sys.stderr, flush=True)
        try:
            report[name] = case()
        except Exception:
            report[name] = {"error": traceback.format_exc()}
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    return 0


def _open(app, path):
    if not os.path.exists(path):  # openDocument() of a missing file shows a modal box
        raise FileNotFoundError(path)
    doc = app.openDocument(path)
    doc.setBatchmode(True)
    return doc, doc.topLevelNodes()[0]


def _host(doc, node):
    from sfumato_krita.krita_host import KritaHost

    return KritaHost(doc, node)


def _whole(doc):
    from sfumato.bridge.selection import Rect

    return Rect(0, 0, doc.width(), doc.height())


def _dump(out, name, raster):
    with open(os.path.join(out, f"{name}.raw"), "wb") as f:
        f.write(raster.packed_bytes())
    return {"layout": raster.layout.value, "size": [raster.width, raster.height]}


def _converted(app, out, path, depth, profile, layout_name):
    from sfumato.bridge.raster import Layout

    doc, node = _open(app, path)
    doc.setColorSpace("RGBA", depth, profile)  # Krita's own (LCMS) conversion
    doc.waitForDone()
    node = doc.topLevelNodes()[0]
    host = _host(doc, node)
    name = f"{depth.lower()}_{profile[-7:-4]}_{layout_name.lower()}"
    facts_selection = host.selection_bounds()
    facts = {"format": [node.colorModel(), node.colorDepth(), node.colorProfile()],
             "raw": name,
             "read": _dump(out, name, host.read_pixels(_whole(doc), [Layout(layout_name.lower())])),
             "selection": facts_selection}
    doc.close()
    return facts


def _write_float(app, out, path):
    """add_layer on a float document; Krita converting it back to 16-bit sRGB is the oracle."""
    from sfumato.bridge.raster import Layout, Raster

    doc, node = _open(app, path)
    doc.setColorSpace("RGBA", "F32", LINEAR)
    doc.waitForDone()
    node = doc.topLevelNodes()[0]
    width, height = 8, 6
    values = array("H", (((x * 8000 + y * 3000 + c * 11000) % 65536) if c < 3 else 65535
                         for y in range(height) for x in range(width) for c in range(4)))
    raster = Raster(width, height, Layout.RGBA16, values.tobytes())
    host = _host(doc, node)
    host.add_layer(raster, 5, 3, "written")
    doc.setColorSpace("RGBA", "U16", SRGB_TRC)
    doc.waitForDone()
    layer = next(n for n in doc.topLevelNodes() if n.name() == "written")
    with open(os.path.join(out, "f32_write_oracle.raw"), "wb") as f:
        f.write(bytes(layer.pixelData(5, 3, width, height)))  # B,G,R,A u16
    with open(os.path.join(out, "f32_write_sent.raw"), "wb") as f:
        f.write(values.tobytes())
    facts = {"names": [n.name() for n in doc.topLevelNodes()], "size": [width, height]}
    doc.close()
    return facts


def _selection(app, path):
    from krita import Selection

    doc, node = _open(app, path)
    host = _host(doc, node)
    facts = {"none": _rect(host.selection_bounds())}
    selection = Selection()
    selection.select(10, 8, 20, 12, 255)
    doc.setSelection(selection)
    doc.waitForDone()
    facts["rect"] = _rect(host.selection_bounds())
    from sfumato.bridge.selection import Rect

    mask = host.read_selection(Rect(8, 6, 24, 16))
    facts["mask"] = list(bytes(mask.data))
    selection.feather(4)
    doc.setSelection(selection)
    doc.waitForDone()
    facts["feathered"] = _rect(host.selection_bounds())
    off = Selection()
    off.select(-40, -40, 20, 20, 255)  # entirely off the canvas
    doc.setSelection(off)
    doc.waitForDone()
    facts["off_canvas"] = _rect(host.selection_bounds())
    doc.close()
    return facts


def _add_layer(app, out, path):
    from sfumato.bridge.raster import Layout, Raster

    doc, node = _open(app, path)
    host = _host(doc, node)
    data = bytes((x * 40) % 256 for x in range(6 * 4 * 4))
    host.add_layer(Raster(6, 4, Layout.RGBA8, data), 10, 7, "added")
    doc.waitForDone()
    nodes = doc.topLevelNodes()
    added = next(n for n in nodes if n.name() == "added")
    with open(os.path.join(out, "added.raw"), "wb") as f:
        f.write(bytes(added.pixelData(10, 7, 6, 4)))
    facts = {"names": [n.name() for n in nodes], "bounds": _qrect(added.bounds()),
             "sent": list(data)}
    doc.close()
    return facts


def _refused(app, endpoint, model, depth):
    from krita import Selection
    from sfumato.bridge import actions
    from sfumato.bridge.client import Client

    doc = app.createDocument(32, 24, "refused", model, depth, "", 72.0)
    doc.setBatchmode(True)
    node = doc.topLevelNodes()[0]
    selection = Selection()
    selection.select(4, 4, 8, 8, 255)
    doc.setSelection(selection)
    doc.waitForDone()
    before = bytes(node.pixelData(0, 0, 32, 24))
    count = len(doc.topLevelNodes())
    from sfumato_krita.krita_host import refusal

    with Client(endpoint, timeout_s=10) as client:
        outcome = actions.inpaint_selection(_host(doc, node), client, {"prompt": "x"}, None)
    facts = {"ok": outcome.ok, "message": outcome.message, "refusal": refusal(doc, node),
             "unchanged": bytes(node.pixelData(0, 0, 32, 24)) == before
             and len(doc.topLevelNodes()) == count}
    doc.close()
    return facts


def _select(app, out, path, endpoint, mode, as_mask):
    """bridge.select_object through KritaHost (issue 18): the daemon's worker answers with a
    known mask; the selection after (or the new selection mask's) is dumped whole."""
    from krita import Selection
    from sfumato.bridge.client import Client
    from sfumato.bridge.select_object import select_object

    doc, node = _open(app, path)
    width, height = doc.width(), doc.height()
    selection = Selection()
    selection.select(10, 8, 20, 12, 255)  # the rough selection, replaced by the result
    doc.setSelection(selection)
    doc.waitForDone()
    pixels = bytes(node.pixelData(0, 0, width, height))
    names = [n.name() for n in doc.topLevelNodes()]
    params = {"text": "the cat"} if mode == "words" else {"context": 4}
    host = _host(doc, node)
    with Client(endpoint, timeout_s=60) as client:
        outcome = select_object(host, client, params, "tiny-sam2", mode,
                                output="channel" if as_mask else "selection")
    doc.waitForDone()
    after = doc.selection()
    facts = {"ok": outcome.ok, "message": outcome.message, "size": [width, height],
             "layers_unchanged": bytes(node.pixelData(0, 0, width, height)) == pixels
             and [n.name() for n in doc.topLevelNodes()] == names,
             "masks": [c.name() for c in node.childNodes() if c.type() == "selectionmask"],
             "host_messages": host.messages}
    with open(os.path.join(out, f"{mode}_{as_mask}_selection.raw"), "wb") as f:
        f.write(b"" if after is None else bytes(after.pixelData(0, 0, width, height)))
    masks = [c for c in node.childNodes() if c.type() == "selectionmask"]
    if masks:
        with open(os.path.join(out, f"{mode}_{as_mask}_mask.raw"), "wb") as f:
            f.write(bytes(masks[0].selection().pixelData(0, 0, width, height)))
    doc.close()
    return facts


def _recipe_through_kra(app, out, path, endpoint):
    """Issue 19: an edit's result layer keeps its recipe through a saved and reopened .kra,
    and Regenerate from the reopened recipe paints the same settings with a new seed."""
    from krita import Selection
    from sfumato.bridge import actions
    from sfumato.bridge.client import Client
    from sfumato_krita.krita_host import recipe_key

    def select(doc):
        selection = Selection()
        selection.select(9, 7, 21, 13, 255)
        doc.setSelection(selection)
        doc.waitForDone()

    doc, node = _open(app, path)
    select(doc)
    before = {n.uniqueId().toString() for n in doc.topLevelNodes()}
    params = {"instruction": "make it night", "steps": 2, "seed": 5, "resolution": 64}
    with Client(endpoint, timeout_s=120) as client:
        made = actions.edit(_host(doc, node), client, params, "tiny-edit")
    doc.waitForDone()
    added = [n for n in doc.topLevelNodes() if n.uniqueId().toString() not in before]
    if len(added) != 1:
        return {"made": [made.ok, made.message], "added": [n.name() for n in added],
                "before": len(before)}
    (layer,) = added
    layer_id, source_id = layer.uniqueId().toString(), node.uniqueId().toString()
    saved = bytes(doc.annotation(recipe_key(layer)) or b"").decode()
    kra = os.path.join(out, "recipe.kra")
    doc.saveAs(kra)  # in batch mode: no dialog
    doc.waitForDone()
    doc.close()

    again = app.openDocument(kra)  # the same Krita launch, from the file alone
    again.setBatchmode(True)
    nodes = {n.uniqueId().toString(): n for n in again.topLevelNodes()}
    facts = {"made": [made.ok, made.message], "saved": saved,
             "ids_kept": layer_id in nodes and source_id in nodes and len(nodes) == len(before) + 1}
    reopened = nodes.get(layer_id)
    facts["reopened"] = None if reopened is None else \
        bytes(again.annotation(recipe_key(reopened)) or b"").decode()
    source = nodes.get(source_id)
    if facts["reopened"] and source is not None:
        again.setActiveNode(source)  # Regenerate paints on the result's source
        select(again)
        with Client(endpoint, timeout_s=120) as client:
            redone = actions.regenerate(_host(again, source), client, facts["reopened"])
        again.waitForDone()
        new = [n for n in again.topLevelNodes() if n.uniqueId().toString() not in nodes]
        facts["regenerated"] = [redone.ok, redone.message]
        facts["new_recipes"] = [bytes(again.annotation(recipe_key(n)) or b"").decode()
                                for n in new]
    again.setModified(False)
    again.close()
    return facts


def _rect(rect):
    return None if rect is None else [rect.x, rect.y, rect.width, rect.height]


def _qrect(rect):
    return [rect.x(), rect.y(), rect.width(), rect.height()]
