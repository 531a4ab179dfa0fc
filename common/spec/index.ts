/** Drover's spec model: one implementation shared by the language server, the runner and the extension. */
export * from './diagnostics';
export * from './expand';
export * from './expressions';
export * from './model';
export * from './schema';
export * from './text';
export * from './units';
export * from './validate';
export * from './yaml-source';
export * from './incremental';
