/** The socket callbacks of backend connections: each socket's data is its Connection, which does the work. */
import type { SocketHandler } from "bun";
import type { Connection } from "./connection.ts";

/** Socket callbacks, shared by every connection (each socket's data is its Connection). */
export const SOCKET_HANDLERS: SocketHandler<Connection> = {
  open: (socket) => socket.data.onOpen(socket),
  data: (socket, bytes) => socket.data.onData(bytes),
  drain: (socket) => socket.data.onDrain(),
  error: (socket, error) => socket.data.onError(error),
  handshake: (socket, success, authorizationError) => socket.data.onHandshake(success, authorizationError),
  close: (socket, error) => {
    if (error) socket.data.onError(error);
    socket.data.onClose();
  },
};

/**
 * Callbacks for a connection that starts with a PROXY header: it is written as the socket opens, before anything else;
 * for https:// the socket then starts TLS, and the TLS socket takes the usual callbacks (the clear one hears nothing more).
 */
export function proxyHeaderFirst(header: Uint8Array, tls: object | undefined): SocketHandler<Connection> {
  // A new socket's send buffer is empty: a header (at most 232 bytes) always goes whole.
  if (!tls) return { ...SOCKET_HANDLERS, open: (socket) => (socket.write(header), socket.data.onOpen(socket)) };
  return {
    open(socket) {
      socket.write(header);
      socket.upgradeTLS<Connection>({ data: socket.data, tls, socket: SOCKET_HANDLERS });
    },
    data() {},
    close: (socket, error) => SOCKET_HANDLERS.close!(socket, error),
    error: (socket, error) => socket.data.onError(error),
  };
}
