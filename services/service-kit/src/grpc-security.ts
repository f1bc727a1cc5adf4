import { readFileSync } from 'node:fs';
import { createSecureContext, type PeerCertificate } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from './logger';

/**
 * The names calsync's callers and servers carry in their certificates (the subject's common
 * name). Authorization tables and server checks use these, never host names.
 */
export const grpcIdentities = {
  identity: 'calsync-identity',
  subscription: 'calsync-subscription',
  meetings: 'calsync-meetings',
  gateway: 'calsync-gateway',
  /** A person running admin commands (the `calsync` CLI), never a service. */
  operator: 'calsync-operator',
} as const;

export type GrpcIdentity = (typeof grpcIdentities)[keyof typeof grpcIdentities];

/** Where a service's gRPC certificate, its key and the CA that signs every calsync certificate live. */
export interface CertificateFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/**
 * How internal gRPC is protected: mutual TLS with certificates re-read from files every
 * `reloadIntervalMs`, or plaintext, which only an explicit setting chooses.
 */
export type GrpcSecurity = ({ mode: 'mtls'; reloadIntervalMs: number } & CertificateFiles) | { mode: 'plaintext' };

/**
 * Reads the files once and fails fast, naming the file, when they cannot serve: unreadable,
 * not PEM, a key that does not match the certificate, or a certificate the CA did not sign.
 * Returns the certificate's identity and expiry for the start-up log.
 */
export function checkCertificateFiles(files: CertificateFiles): { identity: string; notAfter: string } {
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new Error(`gRPC ${what} ${path} cannot be read: ${(error as Error).message}`);
    }
  };
  const cert = read(files.certFile, 'certificate');
  const key = read(files.keyFile, 'key');
  const ca = read(files.caFile, 'CA');
  try {
    createSecureContext({ cert, key, ca });
  } catch (error) {
    throw new Error(
      `gRPC certificate ${files.certFile} and key ${files.keyFile} do not work together: ${(error as Error).message}`,
    );
  }
  const certificate = new X509Certificate(cert);
  const authorities = splitPem(ca).map((pem) => new X509Certificate(pem));
  if (!authorities.some((authority) => certificate.checkIssued(authority) && certificate.verify(authority.publicKey))) {
    throw new Error(`gRPC certificate ${files.certFile} is not signed by a CA in ${files.caFile}`);
  }
  return { identity: commonName(certificate.subject) ?? '', notAfter: new Date(certificate.validTo).toISOString() };
}

function splitPem(bundle: Buffer): string[] {
  return bundle.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

function commonName(subject: string): string | undefined {
  return /^CN=(.*)$/m.exec(subject)?.[1];
}

/**
 * One file watcher per set of files, shared by a process's server and clients. grpc-js polls
 * the files and hands changed certificates to every server and channel using them, so a
 * rotated Secret is served, and trusted, without a restart.
 */
const providers = new Map<string, grpc.experimental.CertificateProvider>();

function providerKey(security: Extract<GrpcSecurity, { mode: 'mtls' }>): string {
  return JSON.stringify([security.certFile, security.keyFile, security.caFile, security.reloadIntervalMs]);
}

function certificateProvider(security: Extract<GrpcSecurity, { mode: 'mtls' }>): grpc.experimental.CertificateProvider {
  const key = providerKey(security);
  let provider = providers.get(key);
  if (!provider) {
    provider = new grpc.experimental.FileWatcherCertificateProvider({
      certificateFile: security.certFile,
      privateKeyFile: security.keyFile,
      caCertificateFile: security.caFile,
      refreshIntervalMs: security.reloadIntervalMs,
    });
    providers.set(key, provider);
  }
  return provider;
}

/**
 * Resolves once the certificate files have been read into the shared provider, so a server
 * that reports itself listening already has a certificate to present.
 */
export function certificatesLoaded(security: GrpcSecurity): Promise<void> {
  if (security.mode === 'plaintext') return Promise.resolve();
  const provider = certificateProvider(security);
  return new Promise((resolve) => {
    const listener = (update: unknown) => {
      if (!update) return;
      provider.removeIdentityCertificateListener(listener);
      resolve();
    };
    provider.addIdentityCertificateListener(listener);
  });
}

/** Server credentials, and how to take back what a bind that failed left watching the files. */
export interface ServerCredentialsHandle {
  credentials: grpc.ServerCredentials;
  /**
   * Stops this server's certificate listeners. grpc-js removes them when a listening server
   * closes, but not when its bind fails: the file watcher's interval then keeps polling and
   * keeps the process alive.
   */
  release(): void;
}

/**
 * Server credentials: the service's certificate, and a request for the caller's. The TLS
 * handshake accepts a caller without a valid certificate so that the call gets a clear
 * UNAUTHENTICATED from authorizeCallers instead of an anonymous connection reset.
 */
export function serverCredentials(security: GrpcSecurity): ServerCredentialsHandle {
  if (security.mode === 'plaintext') return { credentials: grpc.ServerCredentials.createInsecure(), release: () => {} };
  checkCertificateFiles(security);
  const provider = listenersTracked(certificateProvider(security));
  // One provider serves as both the CA and the identity source.
  return {
    credentials: grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false),
    release: provider.release,
  };
}

/** The shared provider as one server sees it: `release` removes every listener added through it. */
function listenersTracked(
  shared: grpc.experimental.CertificateProvider,
): grpc.experimental.CertificateProvider & { release(): void } {
  type CaListener = Parameters<grpc.experimental.CertificateProvider['addCaCertificateListener']>[0];
  type IdentityListener = Parameters<grpc.experimental.CertificateProvider['addIdentityCertificateListener']>[0];
  const ca = new Set<CaListener>();
  const identity = new Set<IdentityListener>();
  return {
    addCaCertificateListener(listener) {
      ca.add(listener);
      shared.addCaCertificateListener(listener);
    },
    removeCaCertificateListener(listener) {
      ca.delete(listener);
      shared.removeCaCertificateListener(listener);
    },
    addIdentityCertificateListener(listener) {
      identity.add(listener);
      shared.addIdentityCertificateListener(listener);
    },
    removeIdentityCertificateListener(listener) {
      identity.delete(listener);
      shared.removeIdentityCertificateListener(listener);
    },
    release() {
      for (const listener of ca) shared.removeCaCertificateListener(listener);
      for (const listener of identity) shared.removeIdentityCertificateListener(listener);
      ca.clear();
      identity.clear();
    },
  };
}

const channels = new Map<string, grpc.ChannelCredentials>();

/**
 * Channel credentials: present the service's certificate, and accept only a server whose
 * certificate the CA signed for `server`. Pods are reached by IP or headless-Service names,
 * so the server is checked by its identity, not by host name. One instance per server, so
 * every client of that server shares grpc-js's connections, as insecure clients always did.
 */
export function channelCredentials(security: GrpcSecurity, server: string): grpc.ChannelCredentials {
  if (security.mode === 'plaintext') return grpc.credentials.createInsecure();
  checkCertificateFiles(security);
  const key = `${providerKey(security)}|${server}`;
  let credentials = channels.get(key);
  if (!credentials) {
    const provider = certificateProvider(security);
    credentials = grpc.experimental.createCertificateProviderChannelCredentials(provider, provider, {
      checkServerIdentity: (_host, certificate) => checkPeer(certificate, server),
    });
    channels.set(key, credentials);
  }
  return credentials;
}

/** undefined when `certificate` names `expected`; the reason otherwise. */
export function checkPeer(certificate: PeerCertificate, expected: string): Error | undefined {
  const name = certificate.subject?.CN;
  return name === expected ? undefined : new Error(`the server presented "${String(name)}", not "${expected}"`);
}

type AuthContextCall = { getAuthContext(): { sslPeerCertificate?: PeerCertificate } };

/** Identities by the HTTP/2 session (one TLS connection) their calls arrive on. */
const identitiesBySession = new WeakMap<object, string | undefined>();

/**
 * The HTTP/2 session a server call arrived on. grpc-js gives interceptors no public handle on
 * it, so this follows its intercepting calls (`nextCall`) to the base call's `stream`; when a
 * grpc-js release moves them, it finds nothing and the caller is read from the call each time.
 */
function sessionOf(call: unknown): object | undefined {
  let current = call as { nextCall?: unknown; stream?: { session?: unknown } } | undefined;
  for (let depth = 0; depth < 8 && current; depth++) {
    const session = current.stream?.session;
    if (typeof session === 'object' && session !== null) return session;
    current = current.nextCall as typeof current;
  }
  return undefined;
}

function identityOnCertificate(call: AuthContextCall): string | undefined {
  // grpc-js gives the peer certificate only when the TLS layer verified it against the CA.
  const name = call.getAuthContext().sslPeerCertificate?.subject?.CN;
  return typeof name === 'string' && name.length > 0 ? name : undefined;
}

/**
 * The identity of a call's caller: the common name of a client certificate the CA signed, if
 * any. Read once per connection: Node builds a new certificate object on every
 * getPeerCertificate(), the largest cost of authorizing a call, and a connection's certificate
 * cannot change (HTTP/2 forbids TLS renegotiation; a rotated certificate comes with a new
 * connection).
 */
export function callerIdentity(call: AuthContextCall): string | undefined {
  const session = sessionOf(call);
  if (!session) return identityOnCertificate(call);
  if (identitiesBySession.has(session)) return identitiesBySession.get(session);
  const identity = identityOnCertificate(call);
  identitiesBySession.set(session, identity);
  return identity;
}

/** Logs what a service will present, and warns loudly when gRPC runs without authentication. */
export function logGrpcSecurity(security: GrpcSecurity, log: Logger): void {
  if (security.mode === 'plaintext') {
    log.warn('gRPC runs in plaintext (GRPC_PLAINTEXT=true): any caller that reaches a port is trusted');
    return;
  }
  const { identity, notAfter } = checkCertificateFiles(security);
  log.info({ identity, notAfter, reloadIntervalMs: security.reloadIntervalMs }, 'gRPC mutual TLS');
}
