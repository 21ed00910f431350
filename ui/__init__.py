"""Dashboard helpers: charts (DataFrame -> plotly Figure), tables (pandas shaping), cached loaders, widgets.

Nothing here does tensor maths: models, data and metrics come from tmu_core.
"""
