#!/usr/bin/env node
'use strict';
// Lift one or more 2D poses with a PoseAug server and print the 3D result as JSON.
//   node lift.js [--server HOST:PORT] [--input POSES.json] [--format h36m17|coco17|mpii16]
//                [--image-size WxH] [--camera FX,FY,CX,CY] [--track-ids 1,1,2,...]
//                [--model NAME] [--timeout S]
//                [--token T] [--tls-ca PEM]
// POSES.json holds one pose [[u, v], ...] or a list of poses, in pixels. Without --input the
// standing H36M-17 pose of lift-sample.json (a 1000 x 1000 image) is lifted.

const fs = require('fs');
const { parseArgs } = require('util');
const { createClient, lift } = require('./client');

const SAMPLE_POSE = require('./lift-sample.json');

function fail(message) {
  process.stderr.write(`lift.js: error: ${message}\n`);
  process.exit(1);
}

async function main() {
  let args;
  try {
    ({ values: args } = parseArgs({
      options: {
        server: { type: 'string', default: '127.0.0.1:50051' },
        input: { type: 'string' },
        format: { type: 'string', default: 'h36m17' },
        'image-size': { type: 'string' },
        camera: { type: 'string' },
        'track-ids': { type: 'string' },
        model: { type: 'string', default: '' },
        timeout: { type: 'string', default: '30' },
        token: { type: 'string', default: process.env.POSEAUG_TOKEN || '' },
        'tls-ca': { type: 'string' },
      },
    }));
  } catch (error) {
    fail(error.message);
  }
  let imageSize;
  if (args['image-size'] !== undefined) {
    const size = /^(\d+)x(\d+)$/.exec(args['image-size']);
    if (!size) fail(`--image-size: expected WIDTHxHEIGHT, got ${args['image-size']}`);
    imageSize = [Number(size[1]), Number(size[2])];
  }
  let camera;
  if (args.camera !== undefined) {
    const values = args.camera.split(',').map(Number);
    if (values.length !== 4 || !values.every(Number.isFinite)) {
      fail(`--camera: expected FX,FY,CX,CY in pixels, got ${args.camera}`);
    }
    const [fx, fy, cx, cy] = values;
    camera = { fx, fy, cx, cy };
  }
  let trackIds;
  if (args['track-ids'] !== undefined) {
    trackIds = args['track-ids'].split(',').map(Number);
    if (!trackIds.every(Number.isInteger)) {
      fail(`--track-ids: expected integers, one per pose, got ${args['track-ids']}`);
    }
  }
  let poses = [SAMPLE_POSE];
  if (args.input) {
    try {
      poses = JSON.parse(fs.readFileSync(args.input, 'utf8'));
    } catch (error) {
      fail(`cannot read ${args.input}: ${error.message}`);
    }
    if (Array.isArray(poses) && Array.isArray(poses[0]) && typeof poses[0][0] === 'number') {
      poses = [poses]; // a single pose
    }
  }
  const client = createClient(args.server, { tlsCa: args['tls-ca'] });
  try {
    const result = await lift(client, poses, {
      format: args.format,
      imageSize,
      camera,
      trackIds,
      model: args.model,
      timeoutSeconds: Number(args.timeout),
      token: args.token,
    });
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } catch (error) {
    const code = error.code !== undefined ? `${require('@grpc/grpc-js').status[error.code]}: ` : '';
    fail(`${code}${error.details || error.message}`);
  } finally {
    client.close();
  }
}

main();
