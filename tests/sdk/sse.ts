// The SDK's event-stream parser against every way a stream can be cut into chunks:
// prints the frames it read for each cut (tests/test_clients.py compares them).
import { frames } from "./sdk/realtime.js";

const stream =
  'event: ready\r\nid: 1\r\ndata: {}\r\n\r\n: heartbeat\r\n\r\n' +
  'event: created\r\nid: 2\r\ndata: {"id":"a","title":"é"}\r\n\r\n' +
  "event: deleted\nid: 3\ndata:{\"id\":\"a\"}\n\n";
const bytes = new TextEncoder().encode(stream);

async function read(cuts: number[]): Promise<string> {
  const pieces: Uint8Array[] = [];
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    pieces.push(bytes.slice(start, cut));
    start = cut;
  }
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const piece of pieces) controller.enqueue(piece);
      controller.close();
    },
  });
  const seen: string[] = [];
  for await (const frame of frames(body)) seen.push(`${frame.event}#${frame.id}:${frame.data}`);
  return seen.join(" | ");
}

async function main(): Promise<void> {
  const whole = await read([]);
  const differing: number[] = [];
  // Every single cut point (between a CR and its LF, inside the two bytes of "é", ...).
  for (let cut = 1; cut < bytes.length; cut++) {
    if ((await read([cut])) !== whole) differing.push(cut);
  }
  // And byte by byte.
  const everyByte = await read(Array.from({ length: bytes.length - 1 }, (_, i) => i + 1));
  console.log(JSON.stringify({ whole, differing, byteByByte: everyByte === whole }));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
