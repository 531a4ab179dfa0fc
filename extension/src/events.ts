/**
 * A minimal event emitter with VS Code's shape (`event(listener) → disposable`), so the modules
 * that hold logic stay free of `vscode` and run under plain mocha.
 */
export interface Disposable {
  dispose(): void;
}

export type Event<T> = (listener: (value: T) => void) => Disposable;

export class Emitter<T> implements Disposable {
  private listeners = new Set<(value: T) => void>();

  readonly event: Event<T> = (listener) => {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  };

  fire(value: T): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(value);
      } catch (error) {
        // One broken listener must not starve the others (the views, the status bar).
        console.error('drover: a listener failed', error);
      }
    }
  }

  dispose(): void {
    this.listeners.clear();
  }
}
