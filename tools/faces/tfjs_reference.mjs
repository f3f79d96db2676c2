// Reference outputs of a TF.js graph model from the official pure-JavaScript CPU backend, for fairdiff's
// runtime parity test (tests/faces/tfjs_parity_test.cpp).
//
// usage: node tools/faces/tfjs_reference.mjs MODEL_JSON INPUT_F32 N,H,W,C OUT_JSON [OUTPUT_NAME ...]
//        node tools/faces/tfjs_reference.mjs --jobs JOBS_JSON
//   INPUT_F32: little-endian float32 values of the input tensor (row-major, NHWC)
//   OUT_JSON:  {"backend": "cpu", "outputs": [{"name", "shape", "data"}]}
//   JOBS_JSON: [{"model", "input", "shape": [N,H,W,C], "out", "outputs": [...]}, ...] (one Node start for all)
// Without output names it returns every output of the model's signature (or its default outputs).
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';

function fail(message) {
  process.stderr.write(`tfjs_reference: ${message}\n`);
  process.exit(2);
}

async function runJob(modelPath, inputPath, shape, outPath, outputNames) {
  // An IO handler that reads model.json and its shards from disk (tf.io's file:// handler needs tfjs-node).
  const fileHandler = {
    load: async () => {
      const model = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
      const weightSpecs = [];
      const buffers = [];
      for (const group of model.weightsManifest) {
        for (const p of group.paths) buffers.push(fs.readFileSync(path.join(path.dirname(modelPath), p)));
        weightSpecs.push(...group.weights);
      }
      const all = Buffer.concat(buffers);
      return {
        modelTopology: model.modelTopology,
        weightSpecs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
        format: model.format,
        generatedBy: model.generatedBy,
        convertedBy: model.convertedBy,
        signature: model.signature,
        userDefinedMetadata: model.userDefinedMetadata,
      };
    },
  };
  const model = await tf.loadGraphModel(fileHandler);
  const bytes = fs.readFileSync(inputPath);
  const values = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  if (values.length !== shape.reduce((a, b) => a * b, 1)) {
    fail(`${inputPath} holds ${values.length} floats, shape ${shape.join(',')} needs ${shape.reduce((a, b) => a * b, 1)}`);
  }
  const input = tf.tensor(values, shape, 'float32');
  const names = outputNames.length > 0 ? outputNames : model.outputs.map((o) => o.name);
  let results = model.execute(input, names);
  if (!Array.isArray(results)) results = [results];
  const outputs = [];
  for (let i = 0; i < results.length; i++) {
    outputs.push({ name: names[i], shape: results[i].shape, data: Array.from(await results[i].data()) });
  }
  fs.writeFileSync(outPath, JSON.stringify({ backend: tf.getBackend(), outputs }));
  tf.dispose([input, ...results]);
  model.dispose();
}

await tf.setBackend('cpu');
await tf.ready();
const args = process.argv.slice(2);
if (args[0] === '--jobs') {
  if (!args[1]) fail('usage: tfjs_reference.mjs --jobs JOBS_JSON');
  for (const job of JSON.parse(fs.readFileSync(args[1], 'utf8'))) {
    await runJob(job.model, job.input, job.shape, job.out, job.outputs || []);
  }
} else {
  const [modelPath, inputPath, shapeText, outPath, ...outputNames] = args;
  if (!modelPath || !inputPath || !shapeText || !outPath) {
    fail('usage: tfjs_reference.mjs MODEL_JSON INPUT_F32 N,H,W,C OUT_JSON [OUTPUT_NAME ...]');
  }
  await runJob(modelPath, inputPath, shapeText.split(',').map(Number), outPath, outputNames);
}
