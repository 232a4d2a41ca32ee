"""The pieces the families are built of, each usable on its own by a researcher.

Numeric conventions that pretrained weights depend on are explicit arguments (BatchNorm
``eps``/``momentum``, conv ``bias``, TF ``padding="same"``, ``ceil_mode``,
``count_include_pad``, the activation). Each module lists its public blocks in ``__all__``.
"""

from .core import *  # noqa: F403
from .core import __all__ as _core
from .dense import *  # noqa: F403
from .dense import __all__ as _dense
from .inception import *  # noqa: F403
from .inception import __all__ as _inception
from .inception_v4 import *  # noqa: F403
from .inception_v4 import __all__ as _inception_v4
from .nasnet import *  # noqa: F403
from .nasnet import __all__ as _nasnet
from .preact import *  # noqa: F403
from .preact import __all__ as _preact
from .squeeze_excite import *  # noqa: F403
from .squeeze_excite import __all__ as _squeeze_excite
from .unet import *  # noqa: F403
from .unet import __all__ as _unet
from .xception import *  # noqa: F403
from .xception import __all__ as _xception

__all__ = [
    *_core,
    *_dense,
    *_inception,
    *_inception_v4,
    *_nasnet,
    *_preact,
    *_squeeze_excite,
    *_unet,
    *_xception,
]
