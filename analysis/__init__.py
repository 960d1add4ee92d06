"""Figures, tables and written answers from finished results; nothing here trains.

A builder turns a task's result into :class:`~probnn.analysis.outputs.Section` objects, which
:func:`~probnn.analysis.outputs.save` writes to a folder and
:func:`~probnn.analysis.html.render_html` renders into the report. One builder module per
question, each importing the parts that answer it:

- (a)-(b) regression: :mod:`~probnn.analysis.regression` (ribbons, curves, the fits table),
  with :mod:`~probnn.analysis.regression_dips` (why a curve dips),
  :mod:`~probnn.analysis.regression_seeds` (across seeds, the cures) and
  :mod:`~probnn.analysis.regression_fits` (reading a fit's record). Bayesian:
  :mod:`~probnn.analysis.bayes_regression`, with :mod:`~probnn.analysis.loo` (PSIS-LOO) and
  :mod:`~probnn.analysis.bayes_nuts` (NUTS).
- (c)-(d) the VAE: :mod:`~probnn.analysis.vae`, with :mod:`~probnn.analysis.vae_images`
  (image grids) and :mod:`~probnn.analysis.likelihood` (what makes an image likely).
- (e) the comparison: :mod:`~probnn.analysis.comparison`, over
  :mod:`~probnn.analysis.holdout_table` (the table of held-out estimates, and where its K
  values come from); the bounds: :mod:`~probnn.analysis.bounds`.
- (f) the conditional VAE: :mod:`~probnn.analysis.cvae`.
- The estimator study: :mod:`~probnn.analysis.estimator_study`, with
  :mod:`~probnn.analysis.estimator_bias`, :mod:`~probnn.analysis.estimator_snr` and
  :mod:`~probnn.analysis.objectives`, over :mod:`~probnn.analysis.significance` (when a
  difference is beyond noise, and how it is printed).

Shared: :mod:`~probnn.analysis.curves`, :mod:`~probnn.analysis.images`,
:mod:`~probnn.analysis.plotting`, :mod:`~probnn.analysis.outputs`,
:mod:`~probnn.analysis.html`; :mod:`~probnn.analysis.invariants` checks the report's numbers
against each other before it is rendered.
"""
