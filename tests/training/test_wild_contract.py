"""The wild tests feed bundles exactly what the server feeds them (training and service each
own their half of the bundle contract; this ties the two halves together)."""

from __future__ import annotations

import numpy as np

from poseaug_service import camera_rays
from poseaug_service.normalization import normalize_screen
from poseaug_training.evaluation import wild_tests
from poseaug_training.evaluation.wild_tests import LiftTest, model_inputs

H36M_LIKE = [1145.0, 1144.0, 512.5, 515.5, -0.207, 0.248, -0.003, -0.0014, -0.001, 1000, 1002]


def _test(n: int = 32) -> LiftTest:
    rng = np.random.default_rng(0)
    visible = rng.random((n, 17)) > 0.2
    return LiftTest(
        pixels=rng.uniform(20, 980, (n, 17, 2)),
        visible=visible,
        intrinsics=np.tile(np.array(H36M_LIKE), (n, 1)),
        target=np.zeros((n, 17, 3), np.float32),
        action=np.zeros(n, np.int64),
        actions=["Walking"],
    )


def test_default_camera_is_the_servers() -> None:
    assert wild_tests.DEFAULT_HFOV_DEG == camera_rays.DEFAULT_HFOV_DEG


def test_camera_rays_inputs_match_the_server() -> None:
    test = _test()
    cams = camera_rays.Intrinsics(
        *(np.full((1, 1), v) for v in H36M_LIKE[:4]),
        radial=np.array([H36M_LIKE[4:7]]),
        tangential=np.array([H36M_LIKE[7:9]]),
    )
    rays, residual = camera_rays.pixels_to_rays(test.pixels, cams)
    assert residual.max() < 1e-6
    served = camera_rays.ray_input(rays, test.visible)
    np.testing.assert_allclose(model_inputs(test, "camera_rays"), served, atol=1e-6)
    default = camera_rays.default_intrinsics(1000.0, 1002.0)
    served = camera_rays.ray_input(
        camera_rays.pixels_to_rays(test.pixels, default)[0], test.visible
    )
    np.testing.assert_allclose(
        model_inputs(test, "camera_rays", camera="default"), served, atol=1e-6
    )


def test_screen_inputs_match_the_server() -> None:
    test = _test()
    test.visible[:] = True
    served = normalize_screen(test.pixels.astype(np.float32), 1000.0, 1002.0)
    np.testing.assert_allclose(model_inputs(test, "videopose3d_screen"), served, atol=1e-6)
