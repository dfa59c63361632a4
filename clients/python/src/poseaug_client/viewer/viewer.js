// The PoseAug 3D viewer: draws the poses embedded in its page (id "poseaug-data") on a 2D
// canvas with its own perspective projection, so the page needs no library and no network.
// Data layout and coding: poseaug_client/viewer/scene.py and codec.py.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("poseaug-data").textContent);
  const skeleton = data.skeleton;
  const JOINTS = skeleton.names.length;
  const PER_POSE = JOINTS * 3;
  const COLOURS = { L: "#1f6fd1", R: "#e4572e", C: "#4d4d4d" };
  const GRID_STEP = 500; // mm, doubled until at most 24 lines span the view
  const NEAR = 100; // mm in front of the eye
  const LIMB_MM = 35; // drawn thickness of a bone
  const JOINT_MM = 30; // drawn radius of a joint

  // --- Decoding (the inverse of codec.py) ---------------------------------------------
  function bytesOf(text) {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function decodeInts(text, count, deltaStride) {
    const bytes = bytesOf(text);
    const out = new Float64Array(count);
    let pos = 0;
    for (let i = 0; i < count; i++) {
      let value = 0;
      let shift = 0;
      let byte;
      do {
        if (pos >= bytes.length) throw new Error("viewer data ends early");
        byte = bytes[pos++];
        value += (byte & 0x7f) * 2 ** shift;
        shift += 7;
      } while (byte & 0x80);
      const signed = value % 2 ? -(value + 1) / 2 : value / 2;
      out[i] = deltaStride && i >= deltaStride ? out[i - deltaStride] + signed : signed;
    }
    return out;
  }

  function decodeBits(text, count) {
    const bytes = bytesOf(text);
    const out = new Uint8Array(count);
    for (let i = 0; i < count; i++) out[i] = (bytes[i >> 3] >> (7 - (i & 7))) & 1;
    return out;
  }

  // --- The scene: figures per step (a frame of tracks, or a row of augmentations) --------
  const steps = [];
  let stepLabel;
  if (data.mode === "tracks") {
    const tracks = data.tracks.map(function (t) {
      const frames = decodeInts(t.frames, t.count, 1);
      const lookup = new Int32Array(data.frames).fill(-1);
      frames.forEach(function (f, k) { lookup[f] = k; });
      return {
        id: t.id,
        lookup: lookup,
        points: decodeInts(t.points, t.count * PER_POSE, PER_POSE),
        inferred: t.inferred ? decodeBits(t.inferred, t.count * JOINTS) : null,
      };
    });
    for (let f = 0; f < data.frames; f++) {
      const figures = [];
      tracks.forEach(function (t) {
        const k = t.lookup[f];
        if (k < 0) return;
        figures.push({
          points: t.points.subarray(k * PER_POSE, (k + 1) * PER_POSE),
          inferred: t.inferred ? t.inferred.subarray(k * JOINTS, (k + 1) * JOINTS) : null,
          label: t.id === null ? "" : "track " + t.id,
        });
      });
      steps.push({ figures: figures });
    }
    stepLabel = function (i) {
      const label = data.frame_labels ? " (" + data.frame_labels[i] + ")" : "";
      return "frame " + (i + 1) + " / " + data.frames + label + ", " +
        steps[i].figures.length + " track" + (steps[i].figures.length === 1 ? "" : "s");
    };
  } else {
    const sources = data.rows / data.count;
    const source = decodeInts(data.source, sources * PER_POSE, 0);
    const augmented = decodeInts(data.augmented, data.rows * PER_POSE, 0);
    const KEYPOINTS = data.keypoint_layout.count;
    const keypoints = decodeInts(data.keypoints, data.rows * KEYPOINTS * 2, 0);
    for (let r = 0; r < data.rows; r++) {
      const s = Math.floor(r / data.count);
      steps.push({
        figures: [
          { points: source.subarray(s * PER_POSE, (s + 1) * PER_POSE), inferred: null, label: "source " + s },
          { points: augmented.subarray(r * PER_POSE, (r + 1) * PER_POSE), inferred: null, label: "augmented" },
        ],
        keypoints: keypoints.subarray(r * KEYPOINTS * 2, (r + 1) * KEYPOINTS * 2),
      });
    }
    stepLabel = function (i) {
      return "row " + (i + 1) + " / " + data.rows + ": source pose " + Math.floor(i / data.count) +
        ", augmentation " + (i % data.count + 1) + " of " + data.count;
    };
  }

  // Where the view looks at each step: the middle of its figures' roots on the floor plane,
  // averaged over a second of steps so the view glides along with the people.
  const targets = (function () {
    const raw = steps.map(function (step) {
      if (!step.figures.length) return null;
      let x = 0, z = 0;
      step.figures.forEach(function (fig) { x += fig.points[0]; z += fig.points[2]; });
      return [x / step.figures.length, z / step.figures.length];
    });
    const half = data.mode === "tracks" ? Math.round(data.fps / 2) : 0;
    let last = [0, data.height, 0];
    return raw.map(function (_, i) {
      let x = 0, z = 0, n = 0;
      for (let k = Math.max(0, i - half); k <= Math.min(raw.length - 1, i + half); k++) {
        if (raw[k]) { x += raw[k][0]; z += raw[k][1]; n++; }
      }
      if (n) last = [x / n, data.height, z / n];
      return last;
    });
  })();

  // --- View state and projection ---------------------------------------------------------
  const view = { yaw: -0.5, pitch: 0.3, distance: data.radius * 2.0, step: 0, playing: false };
  const canvas = document.getElementById("view3d");
  const canvas2d = document.getElementById("view2d");
  const ctx = canvas.getContext("2d");

  function project(x, y, z, w, h) {
    const target = targets[view.step] || [0, data.height, 0];
    const dx = x - target[0];
    const dy = y - target[1];
    const dz = z - target[2];
    const cy = Math.cos(view.yaw);
    const sy = Math.sin(view.yaw);
    const cp = Math.cos(view.pitch);
    const sp = Math.sin(view.pitch);
    const x1 = cy * dx - sy * dz;
    const z1 = sy * dx + cy * dz;
    const y2 = cp * dy + sp * z1;
    const depth = -sp * dy + cp * z1 + view.distance;
    const f = focal(w, h);
    return [w / 2 + (f * x1) / depth, h / 2 - (f * y2) / depth, depth];
  }

  function focal(w, h) {
    return 0.9 * Math.min(w, h);
  }

  function fit(target) {
    const ratio = window.devicePixelRatio || 1;
    const w = target.clientWidth;
    const h = target.clientHeight;
    if (target.width !== Math.round(w * ratio) || target.height !== Math.round(h * ratio)) {
      target.width = Math.round(w * ratio);
      target.height = Math.round(h * ratio);
    }
    const c = target.getContext("2d");
    c.setTransform(ratio, 0, 0, ratio, 0, 0);
    return [c, w, h];
  }

  function drawGrid(w, h) {
    // Lines on the world's grid, as many as the view holds around where it looks.
    const target = targets[view.step] || [0, 0, 0];
    let step = GRID_STEP;
    while ((data.radius * 5) / step > 24) step *= 2;
    const reach = Math.ceil((data.radius * 2.5) / step) * step;
    const x0 = Math.round(target[0] / step) * step;
    const z0 = Math.round(target[2] / step) * step;
    ctx.lineWidth = 1;
    ctx.strokeStyle = "#d5d5d5";
    const pieces = 24;
    for (let k = -reach; k <= reach; k += step) {
      for (const along of [true, false]) {
        ctx.beginPath();
        for (let i = 0; i < pieces; i++) {
          const a = -reach + (2 * reach * i) / pieces;
          const b = -reach + (2 * reach * (i + 1)) / pieces;
          const p = along ? project(x0 + k, 0, z0 + a, w, h) : project(x0 + a, 0, z0 + k, w, h);
          const q = along ? project(x0 + k, 0, z0 + b, w, h) : project(x0 + b, 0, z0 + k, w, h);
          if (p[2] < NEAR || q[2] < NEAR) continue;
          ctx.moveTo(p[0], p[1]);
          ctx.lineTo(q[0], q[1]);
        }
        ctx.stroke();
      }
    }
  }

  function drawFigures(figures, w, h) {
    const bones = [];
    const dots = [];
    figures.forEach(function (fig) {
      const screen = [];
      for (let j = 0; j < JOINTS; j++) {
        screen.push(project(fig.points[3 * j], fig.points[3 * j + 1], fig.points[3 * j + 2], w, h));
      }
      for (let j = 0; j < JOINTS; j++) {
        const inferred = fig.inferred ? fig.inferred[j] === 1 : false;
        dots.push({ p: screen[j], side: skeleton.side[j], inferred: inferred });
        const parent = skeleton.parents[j];
        if (parent < 0) continue;
        const dashed = inferred || (fig.inferred ? fig.inferred[parent] === 1 : false);
        bones.push({ a: screen[parent], b: screen[j], side: skeleton.side[j], dashed: dashed });
      }
      let top = screen[0];
      screen.forEach(function (p) { if (p[1] < top[1]) top = p; });
      if (fig.label && top[2] > NEAR) {
        ctx.fillStyle = "#222";
        ctx.font = "12px sans-serif";
        ctx.textAlign = "center";
        ctx.fillText(fig.label, top[0], top[1] - 14);
      }
    });
    bones.sort(function (u, v) { return v.a[2] + v.b[2] - u.a[2] - u.b[2]; });
    bones.forEach(function (bone) {
      if (bone.a[2] < NEAR || bone.b[2] < NEAR) return;
      ctx.strokeStyle = COLOURS[bone.side];
      ctx.lineWidth = Math.max(1.5, (LIMB_MM * focal(w, h)) / ((bone.a[2] + bone.b[2]) / 2));
      ctx.setLineDash(bone.dashed ? [5, 5] : []);
      ctx.lineCap = bone.dashed ? "butt" : "round";
      ctx.beginPath();
      ctx.moveTo(bone.a[0], bone.a[1]);
      ctx.lineTo(bone.b[0], bone.b[1]);
      ctx.stroke();
    });
    ctx.setLineDash([]);
    dots.sort(function (u, v) { return v.p[2] - u.p[2]; });
    dots.forEach(function (dot) {
      if (dot.p[2] < NEAR) return;
      const radius = Math.max(2.5, (JOINT_MM * focal(w, h)) / dot.p[2]);
      ctx.beginPath();
      ctx.arc(dot.p[0], dot.p[1], radius, 0, 2 * Math.PI);
      if (dot.inferred) { // inferred joints: hollow
        ctx.fillStyle = "#ffffff";
        ctx.fill();
        ctx.lineWidth = 2;
        ctx.strokeStyle = COLOURS[dot.side];
        ctx.stroke();
      } else {
        ctx.fillStyle = COLOURS[dot.side];
        ctx.fill();
      }
    });
  }

  function draw2d(step) {
    const [c, w, h] = fit(canvas2d);
    c.clearRect(0, 0, w, h);
    const kp = step.keypoints;
    let x0 = 0, y0 = 0, x1, y1;
    if (data.image) {
      x1 = data.image[0];
      y1 = data.image[1];
    } else { // no image size: frame every row's keypoints
      x0 = y0 = Infinity;
      x1 = y1 = -Infinity;
      for (let i = 0; i < kp.length; i += 2) {
        x0 = Math.min(x0, kp[i]); x1 = Math.max(x1, kp[i]);
        y0 = Math.min(y0, kp[i + 1]); y1 = Math.max(y1, kp[i + 1]);
      }
      const pad = 0.15 * Math.max(x1 - x0, y1 - y0, 1);
      x0 -= pad; y0 -= pad; x1 += pad; y1 += pad;
    }
    const scale = Math.min((w - 20) / (x1 - x0), (h - 40) / (y1 - y0));
    const ox = (w - scale * (x1 - x0)) / 2;
    const oy = 30 + (h - 40 - scale * (y1 - y0)) / 2;
    const at = function (j) { return [ox + scale * (kp[2 * j] - x0), oy + scale * (kp[2 * j + 1] - y0)]; };
    if (data.image) { // the image's border
      c.strokeStyle = "#999";
      c.lineWidth = 1;
      c.strokeRect(ox, oy, scale * (x1 - x0), scale * (y1 - y0));
    }
    c.fillStyle = "#222";
    c.font = "12px sans-serif";
    const title = "2D projection, " + data.keypoint_layout.format;
    c.fillText(data.image ? title + " (" + data.image[0] + " x " + data.image[1] + " px)" : title + " (px)", 10, 18);
    const layout = data.keypoint_layout; // the keypoints' own 2D skeleton (H36M, COCO, ...)
    c.lineWidth = 3;
    c.lineCap = "round";
    layout.edges.forEach(function (edge) {
      const a = at(edge[0]);
      const b = at(edge[1]);
      const sa = layout.side[edge[0]];
      c.strokeStyle = COLOURS[sa === layout.side[edge[1]] ? sa : "C"];
      c.beginPath(); c.moveTo(a[0], a[1]); c.lineTo(b[0], b[1]); c.stroke();
    });
    for (let j = 0; j < layout.count; j++) {
      const p = at(j);
      c.fillStyle = COLOURS[layout.side[j]];
      c.beginPath(); c.arc(p[0], p[1], 3.5, 0, 2 * Math.PI); c.fill();
    }
  }

  function draw() {
    const [c, w, h] = fit(canvas);
    c.clearRect(0, 0, w, h);
    drawGrid(w, h);
    const step = steps[view.step];
    if (step) {
      drawFigures(step.figures, w, h);
      if (canvas2d) draw2d(step);
    }
    slider.value = String(view.step);
    label.textContent = steps.length ? stepLabel(view.step) : "nothing to show";
    document.body.dataset.step = String(view.step);
    document.body.dataset.drawn = String((Number(document.body.dataset.drawn) || 0) + 1);
  }

  // --- Controls ------------------------------------------------------------------------
  const slider = document.getElementById("step");
  const label = document.getElementById("label");
  const play = document.getElementById("play");
  slider.max = String(Math.max(steps.length - 1, 0));

  function go(step) {
    view.step = Math.min(Math.max(step, 0), Math.max(steps.length - 1, 0));
    draw();
  }

  let timer = null;
  function setPlaying(on) {
    view.playing = on && steps.length > 1;
    play.textContent = view.playing ? "Pause" : "Play";
    if (timer) clearInterval(timer);
    timer = view.playing ? setInterval(function () { go((view.step + 1) % steps.length); }, 1000 / (data.fps || 25)) : null;
  }

  document.getElementById("prev").addEventListener("click", function () { setPlaying(false); go(view.step - 1); });
  document.getElementById("next").addEventListener("click", function () { setPlaying(false); go(view.step + 1); });
  play.addEventListener("click", function () { setPlaying(!view.playing); });
  slider.addEventListener("input", function () { setPlaying(false); go(Number(slider.value)); });
  if (data.mode !== "tracks") play.hidden = true;

  let drag = null;
  canvas.addEventListener("pointerdown", function (e) {
    drag = [e.clientX, e.clientY];
    if (canvas.setPointerCapture) canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointermove", function (e) {
    if (!drag) return;
    view.yaw += (e.clientX - drag[0]) * 0.01;
    view.pitch = Math.min(1.5, Math.max(-1.5, view.pitch + (e.clientY - drag[1]) * 0.01));
    drag = [e.clientX, e.clientY];
    draw();
  });
  const release = function () { drag = null; };
  canvas.addEventListener("pointerup", release);
  canvas.addEventListener("pointercancel", release);
  canvas.addEventListener("wheel", function (e) {
    e.preventDefault();
    view.distance = Math.min(data.radius * 20, Math.max(data.radius * 0.3, view.distance * Math.exp(e.deltaY * 0.001)));
    draw();
  }, { passive: false });
  document.addEventListener("keydown", function (e) {
    if (e.key === "ArrowRight") { setPlaying(false); go(view.step + 1); }
    else if (e.key === "ArrowLeft") { setPlaying(false); go(view.step - 1); }
    else if (e.key === " " && data.mode === "tracks") { e.preventDefault(); setPlaying(!view.playing); }
  });
  window.addEventListener("resize", draw);

  window.poseaugViewer = { view: view, steps: steps.length, go: go, draw: draw };
  draw();
})();
