/** Drover's version, stamped by the build (see webpack.config.js); `dev` when run unbundled. */
declare const __DROVER_VERSION__: string | undefined;

export const DROVER_VERSION: string = typeof __DROVER_VERSION__ === 'string' ? __DROVER_VERSION__ : 'dev';
