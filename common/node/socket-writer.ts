import type { Socket } from 'node:net';
import { AbstractMessageWriter, type Message, type MessageWriter } from 'vscode-jsonrpc/node';

/**
 * Writes JSON-RPC messages to a socket, each as one write (header and content together), and
 * the messages of one turn of the event loop in one system call. vscode-jsonrpc's own writer
 * makes two writes per message and waits for each to finish before the next, which costs a
 * burst of requests or events a system call and a wait per half message. Order is kept: the
 * socket sends what it was given in order.
 */
export class SocketWriter extends AbstractMessageWriter implements MessageWriter {
  private corked = false;
  private errors = 0;

  constructor(private readonly socket: Socket) {
    super();
    socket.on('error', (error) => this.fireError(error));
    socket.on('close', () => this.fireClose());
  }

  write(message: Message): Promise<void> {
    const content = JSON.stringify(message);
    const length = Buffer.byteLength(content, 'utf8');
    if (!this.corked && !this.socket.destroyed) {
      this.corked = true;
      this.socket.cork();
      setImmediate(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    return new Promise((resolve, reject) => {
      this.socket.write(`Content-Length: ${length}\r\n\r\n${content}`, 'utf8', (error) => {
        if (!error) return resolve();
        this.fireError(error, message, ++this.errors);
        reject(error);
      });
    });
  }

  end(): void {
    this.socket.end();
  }
}
