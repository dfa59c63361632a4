from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeypointFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEYPOINT_FORMAT_UNSPECIFIED: _ClassVar[KeypointFormat]
    KEYPOINT_FORMAT_H36M_17: _ClassVar[KeypointFormat]
    KEYPOINT_FORMAT_COCO_17: _ClassVar[KeypointFormat]
    KEYPOINT_FORMAT_MPII_16: _ClassVar[KeypointFormat]

class AugmentOp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUGMENT_OP_UNSPECIFIED: _ClassVar[AugmentOp]
    AUGMENT_OP_BA: _ClassVar[AugmentOp]
    AUGMENT_OP_BL: _ClassVar[AugmentOp]
    AUGMENT_OP_RT: _ClassVar[AugmentOp]

class Placement(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLACEMENT_UNSPECIFIED: _ClassVar[Placement]
    PLACEMENT_IN_VIEW: _ClassVar[Placement]
    PLACEMENT_LEARNED: _ClassVar[Placement]
KEYPOINT_FORMAT_UNSPECIFIED: KeypointFormat
KEYPOINT_FORMAT_H36M_17: KeypointFormat
KEYPOINT_FORMAT_COCO_17: KeypointFormat
KEYPOINT_FORMAT_MPII_16: KeypointFormat
AUGMENT_OP_UNSPECIFIED: AugmentOp
AUGMENT_OP_BA: AugmentOp
AUGMENT_OP_BL: AugmentOp
AUGMENT_OP_RT: AugmentOp
PLACEMENT_UNSPECIFIED: Placement
PLACEMENT_IN_VIEW: Placement
PLACEMENT_LEARNED: Placement

class Tensor(_message.Message):
    __slots__ = ("shape", "data")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ImageSize(_message.Message):
    __slots__ = ("width", "height")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class Lift2Dto3DRequest(_message.Message):
    __slots__ = ("keypoints", "scores", "format", "image_size", "image_sizes", "model", "request_id", "camera", "cameras", "track_ids")
    KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    TRACK_IDS_FIELD_NUMBER: _ClassVar[int]
    keypoints: Tensor
    scores: Tensor
    format: KeypointFormat
    image_size: ImageSize
    image_sizes: _containers.RepeatedCompositeFieldContainer[ImageSize]
    model: str
    request_id: str
    camera: CameraIntrinsics
    cameras: _containers.RepeatedCompositeFieldContainer[CameraIntrinsics]
    track_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, keypoints: _Optional[_Union[Tensor, _Mapping]] = ..., scores: _Optional[_Union[Tensor, _Mapping]] = ..., format: _Optional[_Union[KeypointFormat, str]] = ..., image_size: _Optional[_Union[ImageSize, _Mapping]] = ..., image_sizes: _Optional[_Iterable[_Union[ImageSize, _Mapping]]] = ..., model: _Optional[str] = ..., request_id: _Optional[str] = ..., camera: _Optional[_Union[CameraIntrinsics, _Mapping]] = ..., cameras: _Optional[_Iterable[_Union[CameraIntrinsics, _Mapping]]] = ..., track_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class Lift2Dto3DResponse(_message.Message):
    __slots__ = ("pose3d", "joint_names", "model", "model_version", "request_id", "pose_scores", "joint_inferred", "default_camera")
    POSE3D_FIELD_NUMBER: _ClassVar[int]
    JOINT_NAMES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    POSE_SCORES_FIELD_NUMBER: _ClassVar[int]
    JOINT_INFERRED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_CAMERA_FIELD_NUMBER: _ClassVar[int]
    pose3d: Tensor
    joint_names: _containers.RepeatedScalarFieldContainer[str]
    model: str
    model_version: str
    request_id: str
    pose_scores: Tensor
    joint_inferred: Tensor
    default_camera: bool
    def __init__(self, pose3d: _Optional[_Union[Tensor, _Mapping]] = ..., joint_names: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., model_version: _Optional[str] = ..., request_id: _Optional[str] = ..., pose_scores: _Optional[_Union[Tensor, _Mapping]] = ..., joint_inferred: _Optional[_Union[Tensor, _Mapping]] = ..., default_camera: _Optional[bool] = ...) -> None: ...

class StreamLift2Dto3DRequest(_message.Message):
    __slots__ = ("request", "lookahead")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    LOOKAHEAD_FIELD_NUMBER: _ClassVar[int]
    request: Lift2Dto3DRequest
    lookahead: int
    def __init__(self, request: _Optional[_Union[Lift2Dto3DRequest, _Mapping]] = ..., lookahead: _Optional[int] = ...) -> None: ...

class StreamLift2Dto3DResponse(_message.Message):
    __slots__ = ("response", "request_index")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_INDEX_FIELD_NUMBER: _ClassVar[int]
    response: Lift2Dto3DResponse
    request_index: int
    def __init__(self, response: _Optional[_Union[Lift2Dto3DResponse, _Mapping]] = ..., request_index: _Optional[int] = ...) -> None: ...

class CameraIntrinsics(_message.Message):
    __slots__ = ("fx", "fy", "cx", "cy", "width", "height", "radial", "tangential")
    FX_FIELD_NUMBER: _ClassVar[int]
    FY_FIELD_NUMBER: _ClassVar[int]
    CX_FIELD_NUMBER: _ClassVar[int]
    CY_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    RADIAL_FIELD_NUMBER: _ClassVar[int]
    TANGENTIAL_FIELD_NUMBER: _ClassVar[int]
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    radial: _containers.RepeatedScalarFieldContainer[float]
    tangential: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, fx: _Optional[float] = ..., fy: _Optional[float] = ..., cx: _Optional[float] = ..., cy: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., radial: _Optional[_Iterable[float]] = ..., tangential: _Optional[_Iterable[float]] = ...) -> None: ...

class AugmentRequest(_message.Message):
    __slots__ = ("poses3d", "ops", "count", "seed", "camera", "model", "request_id", "placement", "max_tilt_deg", "redraw_implausible", "keypoint_format")
    POSES3D_FIELD_NUMBER: _ClassVar[int]
    OPS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    MAX_TILT_DEG_FIELD_NUMBER: _ClassVar[int]
    REDRAW_IMPLAUSIBLE_FIELD_NUMBER: _ClassVar[int]
    KEYPOINT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    poses3d: Tensor
    ops: _containers.RepeatedScalarFieldContainer[AugmentOp]
    count: int
    seed: int
    camera: CameraIntrinsics
    model: str
    request_id: str
    placement: Placement
    max_tilt_deg: float
    redraw_implausible: bool
    keypoint_format: KeypointFormat
    def __init__(self, poses3d: _Optional[_Union[Tensor, _Mapping]] = ..., ops: _Optional[_Iterable[_Union[AugmentOp, str]]] = ..., count: _Optional[int] = ..., seed: _Optional[int] = ..., camera: _Optional[_Union[CameraIntrinsics, _Mapping]] = ..., model: _Optional[str] = ..., request_id: _Optional[str] = ..., placement: _Optional[_Union[Placement, str]] = ..., max_tilt_deg: _Optional[float] = ..., redraw_implausible: _Optional[bool] = ..., keypoint_format: _Optional[_Union[KeypointFormat, str]] = ...) -> None: ...

class AugmentParameters(_message.Message):
    __slots__ = ("bone_angle_offsets", "bone_length_ratios", "rotation", "translation")
    BONE_ANGLE_OFFSETS_FIELD_NUMBER: _ClassVar[int]
    BONE_LENGTH_RATIOS_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    TRANSLATION_FIELD_NUMBER: _ClassVar[int]
    bone_angle_offsets: Tensor
    bone_length_ratios: Tensor
    rotation: Tensor
    translation: Tensor
    def __init__(self, bone_angle_offsets: _Optional[_Union[Tensor, _Mapping]] = ..., bone_length_ratios: _Optional[_Union[Tensor, _Mapping]] = ..., rotation: _Optional[_Union[Tensor, _Mapping]] = ..., translation: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class AugmentResponse(_message.Message):
    __slots__ = ("poses3d", "keypoints2d", "parameters", "model", "model_version", "request_id", "outside_joint_limits", "keypoint_format", "redrawn")
    POSES3D_FIELD_NUMBER: _ClassVar[int]
    KEYPOINTS2D_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    OUTSIDE_JOINT_LIMITS_FIELD_NUMBER: _ClassVar[int]
    KEYPOINT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    REDRAWN_FIELD_NUMBER: _ClassVar[int]
    poses3d: Tensor
    keypoints2d: Tensor
    parameters: AugmentParameters
    model: str
    model_version: str
    request_id: str
    outside_joint_limits: Tensor
    keypoint_format: KeypointFormat
    redrawn: int
    def __init__(self, poses3d: _Optional[_Union[Tensor, _Mapping]] = ..., keypoints2d: _Optional[_Union[Tensor, _Mapping]] = ..., parameters: _Optional[_Union[AugmentParameters, _Mapping]] = ..., model: _Optional[str] = ..., model_version: _Optional[str] = ..., request_id: _Optional[str] = ..., outside_joint_limits: _Optional[_Union[Tensor, _Mapping]] = ..., keypoint_format: _Optional[_Union[KeypointFormat, str]] = ..., redrawn: _Optional[int] = ...) -> None: ...

class StreamAugmentRequest(_message.Message):
    __slots__ = ("request", "chunk_size")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    request: AugmentRequest
    chunk_size: int
    def __init__(self, request: _Optional[_Union[AugmentRequest, _Mapping]] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class StreamAugmentResponse(_message.Message):
    __slots__ = ("chunk", "offset")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    chunk: AugmentResponse
    offset: int
    def __init__(self, chunk: _Optional[_Union[AugmentResponse, _Mapping]] = ..., offset: _Optional[int] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "default_model", "refused")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    default_model: str
    refused: _containers.RepeatedCompositeFieldContainer[RefusedBundle]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., default_model: _Optional[str] = ..., refused: _Optional[_Iterable[_Union[RefusedBundle, _Mapping]]] = ...) -> None: ...

class RefusedBundle(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class GetModelInfoResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: ModelInfo
    def __init__(self, model: _Optional[_Union[ModelInfo, _Mapping]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "is_default", "joint_names", "joint_parents", "input_formats", "providers", "has_augmentor", "metrics", "manifest_json", "lifter_input", "temporal_frames", "temporal_lookahead")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    JOINT_NAMES_FIELD_NUMBER: _ClassVar[int]
    JOINT_PARENTS_FIELD_NUMBER: _ClassVar[int]
    INPUT_FORMATS_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    HAS_AUGMENTOR_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    LIFTER_INPUT_FIELD_NUMBER: _ClassVar[int]
    TEMPORAL_FRAMES_FIELD_NUMBER: _ClassVar[int]
    TEMPORAL_LOOKAHEAD_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    is_default: bool
    joint_names: _containers.RepeatedScalarFieldContainer[str]
    joint_parents: _containers.RepeatedScalarFieldContainer[int]
    input_formats: _containers.RepeatedScalarFieldContainer[KeypointFormat]
    providers: _containers.RepeatedScalarFieldContainer[str]
    has_augmentor: bool
    metrics: _containers.ScalarMap[str, float]
    manifest_json: str
    lifter_input: str
    temporal_frames: int
    temporal_lookahead: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., is_default: _Optional[bool] = ..., joint_names: _Optional[_Iterable[str]] = ..., joint_parents: _Optional[_Iterable[int]] = ..., input_formats: _Optional[_Iterable[_Union[KeypointFormat, str]]] = ..., providers: _Optional[_Iterable[str]] = ..., has_augmentor: _Optional[bool] = ..., metrics: _Optional[_Mapping[str, float]] = ..., manifest_json: _Optional[str] = ..., lifter_input: _Optional[str] = ..., temporal_frames: _Optional[int] = ..., temporal_lookahead: _Optional[int] = ...) -> None: ...
