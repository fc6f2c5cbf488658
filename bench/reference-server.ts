// The hand-rolled reference (F): what a user would write instead of Quoll to give the same
// answer (time, in.tensor, out.variable, check_failures) — one route, no registry, no logging,
// no auth, the model run on the main thread. Usage: tsx bench/reference-server.ts <model.onnx> <port>
import Fastify from 'fastify';
import * as ort from 'onnxruntime-node';
import {
  Field,
  FixedSizeList,
  Float32,
  makeData,
  makeVector,
  Table,
  tableFromIPC,
  tableToIPC,
  type Vector,
} from 'apache-arrow';

const [modelPath = '', port = '8471'] = process.argv.slice(2);
const session = await ort.InferenceSession.create(modelPath);
const input = session.inputNames[0] ?? 'float_input';
const output = session.outputNames[0] ?? 'variable';
const app = Fastify({ bodyLimit: 256 * 1024 * 1024 });
app.addContentTypeParser('application/vnd.apache.arrow.file', { parseAs: 'buffer' }, (_r, b, done) =>
  done(null, b),
);
const listType = new FixedSizeList(1, new Field('inner', new Float32()));

app.post('/infer', async (req, reply) => {
  const time = Date.now();
  if (req.headers['content-type'] === 'application/vnd.apache.arrow.file') {
    const table = tableFromIPC(req.body as Buffer);
    const col = table.getChild('tensor') as Vector<FixedSizeList<Float32>>;
    const rows = table.numRows;
    const values = new Float32Array(rows * 18);
    for (let i = 0; i < rows; i++) values.set(col.get(i)?.toArray() as Float32Array, i * 18);
    const result = await session.run({ [input]: new ort.Tensor('float32', values, [rows, 18]) });
    const out = result[output]?.data as Float32Array;
    const outData = makeData({
      type: listType,
      length: rows,
      child: makeData({ type: new Float32(), data: out }),
    });
    const answer = new Table({
      time: makeVector(new BigInt64Array(rows).fill(BigInt(time))),
      'in.tensor': col,
      'out.variable': makeVector(outData),
      check_failures: makeVector(new Uint32Array(rows)),
    });
    return reply
      .header('content-type', 'application/vnd.apache.arrow.file')
      .send(Buffer.from(tableToIPC(answer, 'file')));
  }
  const records = req.body as { tensor: number[] }[];
  const values = new Float32Array(records.length * 18);
  records.forEach((r, i) => values.set(r.tensor, i * 18));
  const result = await session.run({ [input]: new ort.Tensor('float32', values, [records.length, 18]) });
  const out = result[output]?.data as Float32Array;
  return records.map((r, i) => ({
    time,
    'in.tensor': r.tensor,
    'out.variable': [out[i]],
    check_failures: 0,
  }));
});

await app.listen({ host: '127.0.0.1', port: Number(port) });
console.log(`reference listening on http://127.0.0.1:${port}`);
