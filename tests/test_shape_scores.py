import torch

from shapetex.data.builtin import builtin_images, translated_version
from shapetex.metrics.shapes import silhouette_score, texture_score


def _f(x):
    return x.float() / 127.5 - 1


def test_scores_separate_good_from_bad_translations():
    x = _f(builtin_images("shape-holdout", 32, 32, seed=7, task="stripes"))
    correct = _f(translated_version("shape-holdout", 32, 32, seed=7, task="stripes"))  # a hand-made correct translation
    random_tex = _f(builtin_images("texture", 32, 32, seed=8, task="stripes"))
    noise = torch.rand_like(x) * 2 - 1
    # silhouette: the identity and the correct translation keep it; a random image and noise do not
    assert silhouette_score(x, x) == 1.0
    assert silhouette_score(x, correct) > 0.9
    assert silhouette_score(x, random_tex) < 0.5 and silhouette_score(x, noise) < 0.3
    # texture: stripes score ~1, the plain input ~0
    assert texture_score(correct) > 0.85 and texture_score(random_tex) > 0.85
    assert texture_score(x) < 0.05
    assert texture_score(noise) < texture_score(correct)


def test_texture_score_rises_with_stripe_contrast():
    correct = _f(translated_version("shape-holdout", 16, 32, seed=1, task="stripes"))
    x = _f(builtin_images("shape-holdout", 16, 32, seed=1, task="stripes"))
    half = (correct + x) / 2  # half-faded stripes
    assert texture_score(x) < texture_score(half) < texture_score(correct)
