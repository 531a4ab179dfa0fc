export * from './daemon';
