/** The `caretkv cli` flags, shared by the command's declaration (command.ts) and its runner (connect.ts). */

export interface CliFlags {
  host?: string;
  port?: number;
  url?: string;
  user?: string;
  password?: string;
  tls?: boolean;
  tlsCa?: string;
  timeout: number;
  json?: boolean;
  color: boolean;
}

/** Read the password from here rather than a flag that `ps` shows to every user (redis-cli's REDISCLI_AUTH). */
export const PASSWORD_ENV = 'CARETKV_PASSWORD';
