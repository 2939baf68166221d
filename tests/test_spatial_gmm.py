"""Tests of the colour / location GMMs of Eq. (6) (segtube_jax.spatial.gmm)."""

import sys

import cv2
import numpy as np

from segtube_jax.spatial import gmm


def _two_clusters(n=200, seed=0):
  rng = np.random.default_rng(seed)
  fg = rng.normal([70, 20, 20], 3, (n, 3))
  bg = rng.normal([30, -10, 5], 3, (n, 3))
  return fg, bg


def test_posterior_separates_clusters():
  fg, bg = _two_clusters()
  s = gmm.GmmSettings(components=3, reg_covar=1.0)
  models = gmm.fit_gmm(fg, s), gmm.fit_gmm(bg, s)
  assert np.all(gmm.label_posterior(*models, fg) > 0.99)
  assert np.all(gmm.label_posterior(*models, bg) < 0.01)


def test_prior_shifts_posterior():
  fg, bg = _two_clusters()
  s = gmm.GmmSettings(components=1, reg_covar=1.0)
  models = gmm.fit_gmm(fg, s), gmm.fit_gmm(bg, s)
  mid = (fg.mean(0) + bg.mean(0))[None] / 2
  assert gmm.label_posterior(*models, mid, 0.1)[0] < gmm.label_posterior(*models, mid, 0.9)[0]


def test_too_few_samples_gives_flat_model():
  s = gmm.GmmSettings(components=5, min_samples=8)
  assert gmm.fit_gmm(np.zeros((7, 3)), s) is None
  assert gmm.fit_gmm(np.zeros((0, 3)), s) is None
  np.testing.assert_array_equal(gmm.label_posterior(None, None, np.zeros((2, 3))), [0.5, 0.5])
  np.testing.assert_array_equal(gmm.label_posterior(None, None, np.zeros((2, 3)), 0.2), [0.5, 0.5])


def test_degenerate_samples_fit():
  s = gmm.GmmSettings(components=5, min_samples=8, reg_covar=1.0)
  one = gmm.fit_gmm(np.ones((30, 3)), s)  # All identical: one component, regularised.
  assert one.n_components == 1
  assert np.all(np.isfinite(one.score_samples(np.zeros((2, 3)))))
  few = gmm.fit_gmm(np.random.default_rng(0).normal(size=(20, 2)), s)
  assert few.n_components == 2  # About min_samples per component.


def test_fit_is_deterministic_and_subsamples():
  fg, _ = _two_clusters(n=3000)
  s = gmm.GmmSettings(components=4, max_samples=500, seed=3)
  a, b = gmm.fit_gmm(fg, s), gmm.fit_gmm(fg, s)
  np.testing.assert_array_equal(a.means_, b.means_)


def test_warm_start_from_previous_model():
  fg, bg = _two_clusters()
  s = gmm.GmmSettings(components=2, reg_covar=1.0)
  first = gmm.fit_label_models(np.r_[fg, bg], np.r_[np.ones(200, bool), np.zeros(200, bool)], s)
  again = gmm.fit_label_models(
    np.r_[fg, bg], np.r_[np.ones(200, bool), np.zeros(200, bool)], s, first
  )
  assert again[0].n_components == 2
  np.testing.assert_allclose(
    np.sort(again[0].means_[:, 0]), np.sort(first[0].means_[:, 0]), atol=1.0
  )


def test_log_density_matches_sklearn():
  rng = np.random.default_rng(0)
  samples = np.concatenate([rng.normal(0, 5, (300, 3)), rng.normal(40, 10, (300, 3))])
  model = gmm.fit_gmm(samples, gmm.GmmSettings(components=4))
  points = rng.normal(20, 30, (1000, 3))
  np.testing.assert_allclose(
    gmm.log_density(model, points), model.score_samples(points), rtol=1e-5, atol=1e-4
  )


def _textured_segments(seed=0):
  """Superpixels of 40 pixels: fg ones of alternating red and blue pixels, bg ones purple.

  The fg and bg superpixels have the same mean colour, so only their pixels tell them apart.
  """
  rng = np.random.default_rng(seed)
  labels = np.r_[np.ones(30, bool), np.zeros(30, bool)]
  segment = np.repeat(np.arange(60), 40)
  pixels = np.empty((segment.size, 3), np.uint8)
  red_blue = np.where((np.arange(segment.size) % 2)[:, None] == 0, [200, 30, 40], [40, 30, 200])
  # The background's colour is the foreground pixels' mean Lab colour.
  mean_lab = gmm.rgb_to_lab(red_blue).mean(0).astype(np.float32).reshape(1, 1, 3)
  purple = np.round(255 * cv2.cvtColor(mean_lab, cv2.COLOR_Lab2RGB).reshape(3))
  pixels[:] = np.where(labels[segment][:, None], red_blue, purple)
  pixels = np.clip(pixels + rng.integers(-6, 7, pixels.shape), 0, 255).astype(np.uint8)
  return pixels, segment, labels


def test_pixel_models_separate_a_texture_that_superpixel_means_cannot():
  pixels, segment, labels = _textured_segments()
  s = gmm.GmmSettings(components=3, min_samples=4, reg_covar=1.0)
  models = gmm.fit_pixel_models(pixels, segment.reshape(1, 60, 40), labels, s, s)
  area = np.bincount(segment)
  post = gmm.pixel_color_posterior(models, gmm.quantized_colors(pixels), segment, area)
  assert np.all(post[labels] > 0.9) and np.all(post[~labels] < 0.1)
  # The same data as superpixel mean colours: both labels share one colour.
  means = np.stack([np.bincount(segment, gmm.rgb_to_lab(pixels)[:, k]) / area for k in range(3)], 1)
  mean_post = gmm.label_posterior(
    gmm.fit_gmm(means[labels], s), gmm.fit_gmm(means[~labels], s), means
  )
  assert np.abs(mean_post[labels].mean() - mean_post[~labels].mean()) < 0.2


def test_pixel_color_posterior_matches_a_per_pixel_reference():
  pixels, segment, labels = _textured_segments(seed=1)
  s = gmm.GmmSettings(components=2, min_samples=4, max_samples=300, reg_covar=1.0)
  models = gmm.fit_pixel_models(pixels, segment.reshape(1, 60, 40), labels, s, s)
  post = gmm.pixel_color_posterior(
    models, gmm.quantized_colors(pixels), segment, np.bincount(segment), 0.3
  )
  # Reference: every pixel's colour snapped to its quantisation cell centre, evaluated directly.
  centre = (pixels >> 3).astype(np.float64) * 8 + 4
  lab = gmm.rgb_to_lab(centre.astype(np.uint8))
  ratio = models[0].score_samples(lab) - models[1].score_samples(lab)
  mean = np.bincount(segment, ratio) / np.bincount(segment) + np.log(0.3 / 0.7)
  np.testing.assert_allclose(post, 1 / (1 + np.exp(-mean)), atol=1e-3)


def test_pixel_models_leave_out_the_labelling_boundary():
  # One 24x24 frame of 16 superpixels (6x6 blocks); the 4 centre blocks are the foreground, red,
  # with a 1-pixel rim of the colour in between red and blue, as chroma subsampling leaves it.
  segments = (np.arange(24)[:, None] // 6) * 4 + np.arange(24)[None] // 6
  labels = np.zeros(16, bool)
  labels[[5, 6, 9, 10]] = True
  image = np.where(labels[segments][..., None], [200, 30, 40], [40, 30, 200]).astype(np.uint8)
  image[6, 6:18] = image[17, 6:18] = image[6:18, 6] = image[6:18, 17] = [120, 30, 120]
  s = gmm.GmmSettings(components=3, min_samples=1, reg_covar=1.0)
  fg, bg = gmm.fit_pixel_models(image.reshape(-1, 3), segments[None], labels, s, s)
  red, rim = gmm.rgb_to_lab(np.array([[200, 30, 40], [120, 30, 120]]))
  assert np.all(np.linalg.norm(fg.means_ - red, axis=1) < 3)  # No component for the rim.
  assert np.all(np.linalg.norm(bg.means_ - rim, axis=1) > 10)


def test_quantized_colors():
  rgb = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [8, 16, 24]], np.uint8)
  np.testing.assert_array_equal(
    gmm.quantized_colors(rgb), [0, 31 << 10, 31 << 5, 31, (1 << 10) | (2 << 5) | 3]
  )


def test_pixel_models_are_flat_with_too_few_superpixels():
  pixels, segment, labels = _textured_segments()
  few = np.zeros_like(labels)
  few[:3] = True  # 3 fg superpixels (120 pixels) < min_samples 8.
  models = gmm.fit_pixel_models(
    pixels, segment.reshape(1, 60, 40), few, gmm.GmmSettings(5), gmm.GmmSettings(5)
  )
  assert models[0] is None and models[1] is not None
  post = gmm.pixel_color_posterior(
    models, gmm.quantized_colors(pixels), segment, np.bincount(segment)
  )
  np.testing.assert_array_equal(post, 0.5)
  # A few superpixels' pixels hold few independent colours: components are bounded by them.
  bounded = gmm.fit_pixel_models(
    pixels,
    segment.reshape(1, 60, 40),
    labels,
    gmm.GmmSettings(5, min_samples=8),
    gmm.GmmSettings(5),
  )
  assert bounded[0].n_components == 30 // 8


def test_sklearn_is_imported_in_the_background_on_request():
  thread = gmm.import_in_background()
  thread.join(timeout=60)
  assert not thread.is_alive() and "sklearn.mixture" in sys.modules
