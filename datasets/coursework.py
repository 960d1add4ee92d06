"""The coursework's fixed choices: its seed and the MNIST images its figures show.

Defined once here (a leaf module: it imports nothing from probnn) and imported wherever they
are used. Image numbers are indices into MNIST's 60,000 training images, in MNIST's own order
(:func:`probnn.datasets.mnist.load_mnist` with ``train=True``).
"""

COURSEWORK_SEED = 309
"""The coursework's random seed: the default seed of every training and evaluation."""

FIGURE_IMAGES = (59289, 28001, 35508, 43876)
"""Training images shown in the reconstruction figure (question c)."""

NOISE_IMAGE = 35508
"""The training image that question (c) adds Gaussian noise to."""

INTERPOLATION_IMAGES = (28001, 43876)
"""The two training images between whose posterior means the interpolation figure walks."""

NOISE_SDS = (0.05, 0.1, 0.2, 0.5, 1.0)
"""Standard deviations of the pixel noise added to :data:`NOISE_IMAGE`."""
