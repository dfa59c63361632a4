"""The 3D viewer: one self-contained HTML page of lifted tracks or of augmentations, written by
`poseaug lift --html`, `poseaug augment --html` and `poseaug view`, or from Python:

    from poseaug_client.viewer import render, track_scene, write_page
    write_page(Path("walk.html"), render(track_scene(poses, track_ids), "my clip"))
"""

from poseaug_client.viewer.page import render, write_page
from poseaug_client.viewer.scene import augment_scene, root_translations, track_scene

__all__ = ["augment_scene", "render", "root_translations", "track_scene", "write_page"]
