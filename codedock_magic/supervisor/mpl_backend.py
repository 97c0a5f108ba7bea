"""matplotlib's backend inside the sandbox: Agg draws, and ``show()`` sends the figures.

Imported by matplotlib itself (``MPLBACKEND=module://codedock_mpl_backend``), so
only once the program uses pyplot; stand-alone, like the rest of the runtime.
"""

import atexit

from codedock_runtime import show
from matplotlib.backend_bases import FigureManagerBase as FigureManager
from matplotlib.backends.backend_agg import FigureCanvasAgg as FigureCanvas

__all__ = ["FigureCanvas", "FigureManager", "show"]

# Figures left open at the end are shown too. pyplot closes every figure at exit
# with a handler it registered before it loaded this module; handlers run last
# registered first, so this one comes before it.
atexit.register(show)
