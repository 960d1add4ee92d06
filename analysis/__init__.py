"""Figures, tables and written answers from finished results; nothing here trains.

A builder turns a task's result into :class:`~probnn.analysis.outputs.Section` objects, which
:func:`~probnn.analysis.outputs.save` writes to a folder and
:func:`~probnn.analysis.html.render_html` renders into the report. One builder module per
question, each importing the parts that answer it:

- (a)-(b) regression: :mod:`.regression` (ribbons, curves, the fits table), with
  :mod:`.regression_dips` (why a curve dips), :mod:`.regression_seeds` (across seeds, the
  cures) and :mod:`.regression_fits` (reading a fit's record); Bayesian:
  :mod:`.bayes_regression`, with :mod:`.loo` (PSIS-LOO) and :mod:`.bayes_nuts` (NUTS).
- (c)-(d) the VAE: :mod:`.vae`, with :mod:`.vae_images` (image grids) and
  :mod:`.likelihood` (what makes an image likely).
- (e) the comparison: :mod:`.comparison`, over :mod:`.holdout_table` (the table of held-out
  estimates, and where its K values come from); the bounds: :mod:`.bounds`.
- (f) the conditional VAE: :mod:`.cvae`.
- The estimator study: :mod:`.estimator_study`, with :mod:`.estimator_bias`,
  :mod:`.estimator_snr` and :mod:`.objectives`, over :mod:`.significance` (when a difference
  is beyond noise, and how it is printed).

Shared: :mod:`.curves`, :mod:`.images`, :mod:`.plotting`, :mod:`.outputs`, :mod:`.html`;
:mod:`.invariants` checks the report's numbers against each other before it is rendered.
"""
