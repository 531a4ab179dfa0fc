export * from './daemon';
export * from './notebook-output';
export * from './webview';
