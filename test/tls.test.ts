/**
 * TLS and mutual TLS over real sockets, with certificates made by openssl for this run.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaretClient } from '../src/client/client.js';
import { type Certificates, LineClient, makeCertificates, startAuthServer, users } from './auth-helpers.js';

let certs: Certificates;
beforeAll(() => {
  certs = makeCertificates();
});
afterAll(() => certs.cleanup());

function fingerprint(socket: tls.TLSSocket): string {
  return socket.getPeerCertificate().fingerprint256;
}

describe('TLS instead of plain (--tls-cert/--tls-key, no --tls-port)', () => {
  it('serves TLS on --port; the client speaks it via caretkvs:// and refuses an unknown CA', async () => {
    const server = await startAuthServer({}, { tlsCert: certs.serverCert, tlsKey: certs.serverKey });
    try {
      const ca = readFileSync(certs.ca);
      const db = new CaretClient(`caretkvs://localhost:${server.port}`, { tls: { ca } });
      try {
        expect(await db.ping()).toBe('PONG');
        expect(await db.set('k', 1)).toBe(true);
      } finally {
        await db.close();
      }

      // Without the CA the self-made certificate is not trusted: the connection fails, loudly.
      const untrusting = new CaretClient(`caretkvs://localhost:${server.port}`);
      await expect(untrusting.connect()).rejects.toMatchObject({ code: 'CONNECT_FAILED' });

      // A plain client on the TLS port gets no answer to its request: the connection just fails.
      const plain = await LineClient.connect(server.port);
      plain.send({ action: 'PING' });
      await plain.waitClosed();
      expect(plain.responses).toEqual([]);
    } finally {
      await server.close();
    }
  });
});

describe('TLS beside plain (--tls-port)', () => {
  it('runs both listeners; reload swaps the certificate for new connections', async () => {
    // In the "file", so that a reload can change them (flags would win over the file).
    const server = await startAuthServer(
      { tlsCert: certs.serverCert, tlsKey: certs.serverKey },
      { tlsPort: 0 },
    );
    try {
      const tlsPort = server.server.tlsAddress!.port;
      expect(tlsPort).not.toBe(server.port);
      const plain = await LineClient.connect(server.port);
      expect(await plain.request({ action: 'PING' })).toEqual({ ok: true, result: 'PONG' });
      plain.destroy();

      const options = { ca: readFileSync(certs.ca), servername: 'localhost' };
      const before = await LineClient.connect(tlsPort, '127.0.0.1', options);
      expect(await before.request({ action: 'PING' })).toEqual({ ok: true, result: 'PONG' });
      const firstPrint = fingerprint(before.socket as tls.TLSSocket);

      server.setFile({ tlsCert: certs.serverCert2, tlsKey: certs.serverKey2 });
      expect(await server.server.reload()).toEqual({ users: 0, tls: true, restartNeeded: [] });
      const after = await LineClient.connect(tlsPort, '127.0.0.1', options);
      expect(firstPrint).toBe(fingerprintOf(certs.serverCert));
      expect(fingerprint(after.socket as tls.TLSSocket)).toBe(fingerprintOf(certs.serverCert2));
      // The live connection keeps working on its certificate.
      expect(await before.request({ action: 'PING' })).toEqual({ ok: true, result: 'PONG' });
      before.destroy();
      after.destroy();
    } finally {
      await server.close();
    }
  });
});

function fingerprintOf(pemPath: string): string {
  return new X509Certificate(readFileSync(pemPath)).fingerprint256;
}

describe('mutual TLS (--tls-ca)', () => {
  it('accepts a client with a certificate from the CA and refuses one without', async () => {
    const server = await startAuthServer(
      { users: await users({ app: { password: 'pw', categories: ['read'], read: ['>'] } }) },
      { tlsCert: certs.serverCert, tlsKey: certs.serverKey, tlsCa: certs.ca },
    );
    try {
      const ca = readFileSync(certs.ca);
      const db = new CaretClient({
        host: 'localhost',
        port: server.port,
        tls: { ca, cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) },
        user: 'app',
        password: 'pw',
      });
      try {
        expect(await db.send({ action: 'HELLO' })).toMatchObject({ user: 'app' });
      } finally {
        await db.close();
      }

      // No client certificate: the server ends the handshake; not one response line arrives.
      const anonymous = tls.connect({ host: '127.0.0.1', port: server.port, ca, servername: 'localhost' });
      const lines: string[] = [];
      anonymous.setEncoding('utf8').on('data', (t: string) => lines.push(t));
      const failure = await new Promise<Error | undefined>((resolve) => {
        let error: Error | undefined;
        anonymous.on('error', (err) => {
          error = err;
        });
        anonymous.on('secureConnect', () => anonymous.write('{"action":"PING"}\n'));
        anonymous.on('close', () => resolve(error));
      });
      expect(lines).toEqual([]);
      expect(failure?.message ?? '').toMatch(/certificate|alert|ECONNRESET|socket hang up/i);
      const logged = server.logs.find((r) => r.msg === 'TLS handshake failed');
      expect(logged).toBeDefined();
    } finally {
      await server.close();
    }
  });
});
