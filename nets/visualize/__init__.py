"""Seeing inside a network: first-layer filters, feature maps per stage, Grad-CAM.

The functions return numpy arrays (``filters``, ``feature_maps``, ``grad_cam``) so that a
user can plot them their own way; the ``save_*`` helpers write our PNGs with matplotlib.
They work on every network of the library through its shared anatomy (``first_conv``,
``stem``, ``stages``, ``feature_info``) and with any weights: ``load_model`` reads a tag, a
checkpoint path or a trainer's ``best.safetensors`` with its class names.

>>> from nets import visualize
>>> model = visualize.load_model("efficientnet_lite0", "imagenet")
>>> cams = visualize.grad_cam(model, "samples/chelsea.jpg", top_k=3)
>>> visualize.save_grad_cam(model, "samples/chelsea.jpg", "cam.png")
"""

from .draw import check_output, save_feature_maps, save_filters, save_grad_cam
from .inputs import PreparedImage, VisualizeError, prepare_image, preprocessing
from .kernels import FilterGrid, filters, first_conv, grid_shape
from .loading import load_model, weights_label
from .maps import ClassMap, StageMaps, class_names, feature_maps, grad_cam

__all__ = [
    "ClassMap",
    "FilterGrid",
    "PreparedImage",
    "StageMaps",
    "VisualizeError",
    "check_output",
    "class_names",
    "feature_maps",
    "filters",
    "first_conv",
    "grad_cam",
    "grid_shape",
    "load_model",
    "prepare_image",
    "preprocessing",
    "save_feature_maps",
    "save_filters",
    "save_grad_cam",
    "weights_label",
]
