'use strict';
// PoseAug client for Node.js: loads the contract (proto/poseaug/v1/poseaug.proto) at run time
// with @grpc/proto-loader, so there is no generated code to keep in sync.
// Tensors travel as packed little-endian float32 bytes plus a shape, as the contract says.

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');
const PROTO_FILE = 'poseaug/v1/poseaug.proto';
const MAX_MESSAGE_BYTES = 256 * 1024 * 1024;
const FORMATS = {
  h36m17: ['KEYPOINT_FORMAT_H36M_17', 17],
  coco17: ['KEYPOINT_FORMAT_COCO_17', 17],
  mpii16: ['KEYPOINT_FORMAT_MPII_16', 16],
};

function loadService(protoRoot = PROTO_ROOT) {
  const definition = protoLoader.loadSync(PROTO_FILE, {
    includeDirs: [protoRoot],
    keepCase: true, // field names as in the proto (image_size, request_id, ...)
    longs: Number,
    enums: String,
    defaults: true,
  });
  return grpc.loadPackageDefinition(definition).poseaug.v1.PoseAugService;
}

// Pack nested arrays (e.g. N x K x 2 numbers) into a Tensor message.
function toTensor(nested) {
  const shape = [];
  for (let level = nested; Array.isArray(level); level = level[0]) shape.push(level.length);
  const flat = nested.flat(Infinity);
  const expected = shape.reduce((a, b) => a * b, 1);
  if (flat.length !== expected || flat.some((v) => typeof v !== 'number')) {
    throw new Error(`keypoints: ragged or non-numeric array (shape ${JSON.stringify(shape)})`);
  }
  const data = Buffer.alloc(4 * flat.length);
  flat.forEach((value, i) => data.writeFloatLE(value, 4 * i));
  return { shape, data };
}

// Unpack a Tensor message into nested arrays of numbers.
function fromTensor(tensor) {
  const shape = tensor.shape.map(Number);
  const values = [];
  for (let i = 0; i < tensor.data.length; i += 4) values.push(tensor.data.readFloatLE(i));
  const build = (dims, offset) => {
    if (dims.length === 1) return values.slice(offset, offset + dims[0]);
    const step = dims.slice(1).reduce((a, b) => a * b, 1);
    return Array.from({ length: dims[0] }, (_, i) => build(dims.slice(1), offset + i * step));
  };
  return build(shape, 0);
}

// A PoseAugService client; options: token (bearer), tlsCa (PEM path) for TLS.
function createClient(address, options = {}) {
  const Service = loadService(options.protoRoot);
  const credentials = options.tlsCa
    ? grpc.credentials.createSsl(fs.readFileSync(options.tlsCa))
    : grpc.credentials.createInsecure();
  return new Service(address, credentials, {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
}

function callMetadata(token) {
  const metadata = new grpc.Metadata();
  if (token) metadata.add('authorization', `Bearer ${token}`);
  return metadata;
}

// Lift poses [N][K][2] (pixels) to 3D [N][17][3] (metres, root-relative).
// options.camera {fx, fy, cx, cy[, width, height, radial, tangential]}: camera-aware models turn
// pixels into rays with it (without one they use their default 60-degree camera). Without a
// camera, options.imageSize defaults to [1000, 1000]; with one, no size is sent unless given.
// options.scores [N][K] in [0, 1]: camera-aware models infer joints scored under 0.3.
// options.trackIds [N] integers: poses sharing one are a track's frames, in order (temporal
// models lift each track over a window of its frames; single-frame models ignore them).
function lift(client, keypoints, options = {}) {
  const format = options.format || 'h36m17';
  if (!FORMATS[format]) throw new Error(`format: unknown ${format}; use ${Object.keys(FORMATS)}`);
  const request = {
    keypoints: toTensor(keypoints),
    format: FORMATS[format][0],
    model: options.model || '',
  };
  const imageSize = options.imageSize || (options.camera ? null : [1000, 1000]);
  if (imageSize) request.image_size = { width: imageSize[0], height: imageSize[1] };
  if (options.camera) request.camera = options.camera;
  if (options.scores) request.scores = toTensor(options.scores);
  if (options.trackIds) request.track_ids = options.trackIds.map(String);
  const deadline = Date.now() + 1000 * (options.timeoutSeconds || 30);
  return new Promise((resolve, reject) => {
    client.Lift2Dto3D(request, callMetadata(options.token), { deadline }, (error, response) => {
      if (error) return reject(error);
      resolve({
        model: response.model,
        model_version: response.model_version,
        joint_names: response.joint_names,
        pose3d: fromTensor(response.pose3d),
        // [N][17], 1 where a camera-aware model inferred the joint; null for format 1 models.
        joint_inferred: response.joint_inferred ? fromTensor(response.joint_inferred) : null,
        default_camera: response.default_camera,
      });
    });
  });
}

function listModels(client, options = {}) {
  const deadline = Date.now() + 1000 * (options.timeoutSeconds || 30);
  return new Promise((resolve, reject) => {
    client.ListModels({}, callMetadata(options.token), { deadline }, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

module.exports = { FORMATS, createClient, fromTensor, lift, listModels, loadService, toTensor };
