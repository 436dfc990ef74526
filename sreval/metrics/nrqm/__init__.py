"""Ma et al.'s no-reference quality metric for super-resolution (NRQM, "Ma's score"), in torch.

Chao Ma, Chih-Yuan Yang, Xiaokang Yang, Ming-Hsuan Yang, "Learning a no-reference quality metric for
single-image super-resolution", CVIU 2017. PIRM 2018 uses it as PI = ½((10 − Ma) + NIQE).

The numbers follow pyiqa's port (`pyiqa.archs.nrqm_arch`, the implementation the PIRM community now
calls), re-implemented here and checked against pyiqa's feature vectors (tests/test_nrqm.py). pyiqa itself
mirrors the authors' MATLAB code; where it deviates from MATLAB we follow pyiqa, including its float32
quirks (float32 filter kernels and frequency masks, a float32 bicubic resize), because that is what makes
the features equal.

Input: one float64 luma plane (H, W) with values 0..255. The caller chooses the plane: the PIRM protocol
(and pyiqa's PI) uses rounded BT.601 Y (MATLAB `rgb2ycbcr` of a uint8 image) with 4 px shaved from every
border. (pyiqa's stand-alone `nrqm` metric defaults to full-range YIQ luma and no shave instead.) pyiqa does
nothing else to the plane before the features: no resize, no further crop.

Three feature groups, each regressed by its own random forest, then combined linearly:

1. local frequency (18): DCT statistics of 7×7 blocks (stride 3) on a 3-level Gaussian pyramid of plane/255;
   per level: GGD shape (mean of the lowest 10 % + 1, mean of all), coefficient of variation (mean of the
   highest 10 %, mean of all), orientation variance (highest 10 %, all).
2. global frequency (45): complex steerable pyramid (2 scales × 6 orientations) of the plane, divisively
   normalised with a Gaussian-scale-mixture neighbourhood; GGD shape of each of the 12 subbands, of the 6
   cross-scale pairs, SSIM contrast-structure between each band and the high-pass residual (12) and
   between the 15 orientation pairs of the finer scale.
3. spatial (75): singular values of the matrix of distinct 5×5 blocks on each pyramid level (25 per level).

Here: `features` computes groups 1 and 3 and all three together, `gsm` group 2 (`steerable` holds its
steerable pyramid and float32 resize), `stats` the GGD fit and kernels they share, `parallel` runs their
independent pieces side by side on torch's CPU threads; `model` reads the model file and scores (the three
forests evaluated as one set of trees).

The model file (`NRQM_model.mat`, as pyiqa downloads it; the authors' `model.mat`) is a MATLAB struct
`model` with fields `rf` (a 3-element cell of `regRF_train` forests, one per group, in the order above) and
`linear` (4×1: intercept and one weight per forest); see `load_nrqm_model`. `matfile` reads it from a
MATLAB 5/7 file (scipy) or a MATLAB 7.3 / HDF5 file (h5py, when installed) into the same arrays.
"""

from sreval.metrics.nrqm.features import FEATURE_SIZES, nrqm_features
from sreval.metrics.nrqm.model import Forest, NrqmModel, load_nrqm_model, nrqm_score

__all__ = ["FEATURE_SIZES", "Forest", "NrqmModel", "load_nrqm_model", "nrqm_features", "nrqm_score"]
