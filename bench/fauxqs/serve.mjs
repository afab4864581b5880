// fauxqs (an in-memory SQS emulator) on a loopback port: `node serve.mjs PORT`.
// Its own CLI listens on every interface; this binds 127.0.0.1 only. It keys queues by their
// full URL; here a queue is found by its name, as on SQS and ElasticMQ, so a URL through the
// benchmarks' counting proxy (another port) names the same queue.
import { buildApp } from "fauxqs";
import { SqsStore } from "./node_modules/fauxqs/dist/sqs/sqsStore.js";

const port = Number.parseInt(process.argv[2], 10);
const byName = (url) => String(url).split("/").pop();
const { getQueue, deleteQueue } = SqsStore.prototype;
SqsStore.prototype.getQueue = function (url) {
  return getQueue.call(this, url) ?? this.queuesByName.get(byName(url));
};
SqsStore.prototype.deleteQueue = function (url) {
  const queue = this.getQueue(url);
  return queue ? deleteQueue.call(this, queue.url) : false;
};
SqsStore.prototype.buildQueueUrl = (name) => `http://127.0.0.1:${port}/000000000000/${name}`;

const sqsStore = new SqsStore();
const app = buildApp({ logger: false, stores: { sqsStore } });
await app.listen({ port, host: "127.0.0.1" });
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => app.close().then(() => process.exit(0)));
}
