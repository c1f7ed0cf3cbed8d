/**
 * The two ends of bench/tcp.sh's layer-4 runs, both on Bun sockets (pinned by the script):
 *   bun bench/tcp-peers.ts backend PORT             stream: send 256 KiB chunks for as long as the client reads;
 *                                                  any connection whose first byte is "h": answer "ok\n" and close
 *   bun bench/tcp-peers.ts stream PORT SECONDS N    N connections read a backend's stream: prints MB/s
 *   bun bench/tcp-peers.ts connect PORT SECONDS N   N clients open, read "ok", close, again: prints connections/s
 */
import type { Socket } from "bun";

const [mode, portText, secondsText, countText] = process.argv.slice(2);
const port = Number(portText);
const CHUNK = new Uint8Array(256 * 1024).fill(97);

if (mode === "backend") {
  const pump = (socket: Socket<{ streaming: boolean }>) => {
    while (socket.data.streaming && socket.write(CHUNK) === CHUNK.length);
  };
  Bun.listen<{ streaming: boolean }>({
    hostname: "127.0.0.1",
    port,
    data: { streaming: false },
    socket: {
      open: (socket) => void (socket.data = { streaming: false }),
      data(socket, bytes) {
        if (socket.data.streaming) return;
        if (bytes[0] === 104) return void socket.end("ok\n");
        socket.data.streaming = true;
        pump(socket);
      },
      drain: pump,
      close: (socket) => void (socket.data.streaming = false),
      error() {},
    },
  });
} else if (mode === "stream") {
  const seconds = Number(secondsText);
  let bytes = 0;
  const sockets = await Promise.all(
    Array.from({ length: Number(countText) }, () =>
      Bun.connect({ hostname: "127.0.0.1", port, socket: { data: (_s, chunk) => void (bytes += chunk.length), error() {} } }),
    ),
  );
  for (const socket of sockets) socket.write("s");
  await Bun.sleep(1000); // warm-up
  const start = { bytes, at: performance.now() };
  await Bun.sleep(seconds * 1000);
  const mb = (bytes - start.bytes) / 1e6 / ((performance.now() - start.at) / 1000);
  for (const socket of sockets) socket.terminate();
  console.log(mb.toFixed(1));
  process.exit(0);
} else if (mode === "connect") {
  const deadline = performance.now() + Number(secondsText) * 1000;
  let done = 0;
  let failed = 0;
  const once = () =>
    new Promise<void>((resolve) => {
      let answered = false;
      Bun.connect({
        hostname: "127.0.0.1",
        port,
        socket: {
          open: (socket) => void socket.write("h"),
          data: () => void (answered = true),
          close: () => {
            if (answered) done++;
            else failed++;
            resolve();
          },
          connectError: () => {
            failed++;
            resolve();
          },
          error() {},
        },
      }).catch(() => {});
    });
  const start = performance.now();
  await Promise.all(Array.from({ length: Number(countText) }, async () => {
    while (performance.now() < deadline) await once();
  }));
  console.log(`${(done / ((performance.now() - start) / 1000)).toFixed(0)} ${failed}`);
  process.exit(0);
} else {
  console.error("usage: bun bench/tcp-peers.ts backend PORT | stream PORT SECONDS N | connect PORT SECONDS N");
  process.exit(2);
}
