/** A tiny authoritative DNS server on loopback UDP for tests: answers A queries from a map the test changes. */
import dgram from "node:dgram";

export interface TestDnsServer {
  /** host:port, for --dns-server. */
  address: string;
  /** name → IPv4 addresses; a name missing here answers NXDOMAIN. */
  records: Map<string, string[]>;
  /** Stop answering (queries time out), as a DNS outage would. */
  silence(): void;
  stop(): void;
}

export async function startDnsServer(): Promise<TestDnsServer> {
  const records = new Map<string, string[]>();
  let silent = false;
  const socket = dgram.createSocket("udp4");
  socket.on("message", (query, peer) => {
    if (silent) return;
    let offset = 12;
    const labels: string[] = [];
    while (query[offset]! !== 0) {
      const length = query[offset]!;
      labels.push(query.subarray(offset + 1, offset + 1 + length).toString());
      offset += length + 1;
    }
    const type = query.readUInt16BE(offset + 1);
    const questionEnd = offset + 5;
    const known = records.get(labels.join(".").toLowerCase());
    const addresses = type === 1 ? (known ?? []) : [];
    const header = Buffer.alloc(12);
    header.writeUInt16BE(query.readUInt16BE(0), 0); // id
    header.writeUInt16BE(0x8180 | (known ? 0 : 3), 2); // response, recursion available; NXDOMAIN if unknown
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(addresses.length, 6);
    const answers = addresses.map((ip) => {
      const answer = Buffer.alloc(16);
      answer.writeUInt16BE(0xc00c, 0); // name: pointer to the question
      answer.writeUInt16BE(1, 2); // A
      answer.writeUInt16BE(1, 4); // IN
      answer.writeUInt32BE(1, 6); // TTL
      answer.writeUInt16BE(4, 10);
      ip.split(".").forEach((part, i) => (answer[12 + i] = Number(part)));
      return answer;
    });
    socket.send(Buffer.concat([header, query.subarray(12, questionEnd), ...answers]), peer.port, peer.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return {
    address: `127.0.0.1:${socket.address().port}`,
    records,
    silence: () => void (silent = true),
    stop: () => socket.close(),
  };
}
