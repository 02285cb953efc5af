export * from './service-time.js';
export * from './physical-clock.js';
export * from './hybrid-clock.js';
