export * from './daemon';
export * from './webview';
