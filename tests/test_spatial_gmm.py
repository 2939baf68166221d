"""Tests of the colour / location GMMs of Eq. (6) (segtube_jax.spatial.gmm)."""

import sys

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


def test_sklearn_is_imported_in_the_background_on_request():
  thread = gmm.import_in_background()
  thread.join(timeout=60)
  assert not thread.is_alive() and "sklearn.mixture" in sys.modules
