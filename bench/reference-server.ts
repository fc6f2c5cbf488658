// The hand-rolled reference (F): what a user would write instead of Quoll. One route, no
// registry, no logging, no auth. Usage: tsx bench/reference-server.ts <model.onnx> <port>
import Fastify from 'fastify';
import * as ort from 'onnxruntime-node';
import { tableFromIPC, tableToIPC, tableFromArrays, type Vector } from 'apache-arrow';

const [modelPath = '', port = '8471'] = process.argv.slice(2);
const session = await ort.InferenceSession.create(modelPath);
const input = session.inputNames[0] ?? 'float_input';
const output = session.outputNames[0] ?? 'variable';
const app = Fastify({ bodyLimit: 256 * 1024 * 1024 });
app.addContentTypeParser('application/vnd.apache.arrow.file', { parseAs: 'buffer' }, (_r, b, done) => done(null, b));

app.post('/infer', async (req, reply) => {
  const arrow = req.headers['content-type'] === 'application/vnd.apache.arrow.file';
  let values: Float32Array;
  let rows: number;
  if (arrow) {
    const table = tableFromIPC(req.body as Buffer);
    const col = table.getChild('tensor') as Vector;
    rows = table.numRows;
    values = new Float32Array(rows * 18);
    for (let i = 0; i < rows; i++) values.set(col.get(i).toArray() as Float32Array, i * 18);
  } else {
    const records = req.body as { tensor: number[] }[];
    rows = records.length;
    values = new Float32Array(rows * 18);
    records.forEach((r, i) => values.set(r.tensor, i * 18));
  }
  const result = await session.run({ [input]: new ort.Tensor('float32', values, [rows, 18]) });
  const out = result[output]?.data as Float32Array;
  if (arrow) {
    const t = tableFromArrays({ 'out.variable': out });
    return reply.header('content-type', 'application/vnd.apache.arrow.file').send(Buffer.from(tableToIPC(t, 'file')));
  }
  return Array.from(out, (v) => ({ 'out.variable': [v] }));
});

await app.listen({ host: '127.0.0.1', port: Number(port) });
console.log(`reference listening on http://127.0.0.1:${port}`);
