"""keras.applications' ImageNet weights: the workflow Keras users know, and the converter.

- ``preprocess_input``, ``decode_predictions``, ``mode_of``, ``wnids``: the keras.applications
  workflow (``weights.keras.preprocessing``);
- ``weights.keras.conversion``: recognising a Keras ``.h5`` file's model, converting it to our
  keys, its preprocessing, and the ``<arch>.keras_in1k`` / ``keras_notop_in1k`` tags;
- one record file per family (``vgg``, ``resnet``, ``mobilenet``, ``mobilenet_v3``,
  ``densenet``, ``inception_v3``, ``xception``, ``inception_resnet_v2``, ``nasnet``,
  ``efficientnet``), as keras.applications lays out its own modules, gathered in ``models``;
- ``reader`` (the moves from Keras layers to our modules) and ``tensors`` (every tensor layout
  change).
"""

from . import conversion  # noqa: F401  (registers the layout and the tags)
from .preprocessing import MODES, decode_predictions, mode_of, preprocess_input, wnids

__all__ = ["MODES", "decode_predictions", "mode_of", "preprocess_input", "wnids"]
