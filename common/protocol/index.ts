export * from './daemon';
export * from './notebook-output';
