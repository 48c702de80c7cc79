"""Batch keys, named once: datamodules write them, modules and callbacks read them.

Every datamodule documents which keys its batches hold:

- ``image``: CHW float in [-1, 1] (unpaired and few-shot data).
- ``a`` / ``b``: two independent images of two domains (unpaired data with ``source_b``).
- ``input`` / ``target``: an aligned pair with the same crop and flip (paired data); ``input``
  is an image-like condition (an image, edges, a pose map, or a colour-coded label map).
- ``label``: the input's label map, ``H x W`` int64 class indices (never normalised; resized
  with nearest neighbour); ``label_onehot``: ``C x H x W`` float one-hot of it.
- ``exemplar`` / ``exemplar_label``: the exemplar image a translation takes its appearance from
  (CoCosNet), and its label map; ``exemplar_input``: the exemplar's own image-like input (edges,
  pose) where the inputs are images, with the exemplar's geometry.
- ``truth``: the correct output where the data knows it (shapes & textures): for exemplar data
  ``render(layout of the input, texture of the exemplar)``.
- ``exemplar_flow``: for exemplars that are a known warp of the target, the true
  correspondence: ``2 x H x W`` pixel coordinates (x, y) in the exemplar of each target pixel.
- ``exemplar_is_self``: bool, the exemplar is the target itself (under augmentation).
"""

IMAGE = "image"
A, B = "a", "b"
INPUT, TARGET = "input", "target"
LABEL, LABEL_ONEHOT = "label", "label_onehot"
EXEMPLAR, EXEMPLAR_LABEL, EXEMPLAR_INPUT = "exemplar", "exemplar_label", "exemplar_input"
TRUTH = "truth"
EXEMPLAR_FLOW = "exemplar_flow"
EXEMPLAR_IS_SELF = "exemplar_is_self"
