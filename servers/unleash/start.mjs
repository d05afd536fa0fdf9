// Starts Unleash for the integration tests: 127.0.0.1 only, port and database from the environment.
// DATABASE_URL, INIT_ADMIN_API_TOKENS and INIT_BACKEND_API_TOKENS are read by unleash-server itself.
import { start } from 'unleash-server';

const port = Number.parseInt(process.env.UNLEASH_PORT ?? '4242', 10);

await start({
  db: { ssl: false },
  server: { host: '127.0.0.1', port },
  authentication: { type: 'open-source', enableApiToken: true },
  versionCheck: { enable: false },
  logLevel: process.env.UNLEASH_LOG_LEVEL ?? 'warn',
});
