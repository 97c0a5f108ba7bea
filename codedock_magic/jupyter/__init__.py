"""The Jupyter side: the ``%%sandbox`` magic, its views, their static rendering, headless runs.

Only this package imports IPython, ipywidgets, traitlets or nbclient.
"""
