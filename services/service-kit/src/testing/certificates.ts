// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, webcrypto } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';
import { checkPeer, grpcIdentities, type CertificateFiles, type GrpcSecurity } from '../grpc-security';

x509.cryptoProvider.set(webcrypto as unknown as ReturnType<typeof x509.cryptoProvider.get>);

const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const dayMs = 24 * 3600 * 1000;

/** A CA made for one dev run or one test process, and certificates it signs, as files. */
export interface ThrowawayCa {
  dir: string;
  caFile: string;
  /** The files of `identity`'s certificate (issued on first use, as `<dir>/<identity>/tls.crt|tls.key`). */
  files(identity: string): Promise<CertificateFiles>;
  /** GRPC_TLS_* variables for a service presenting `identity`. */
  env(identity: string): Promise<Record<string, string>>;
  /** Mutual TLS as `identity`, for clients and servers made in the test itself. */
  security(identity: string): Promise<GrpcSecurity>;
  /** Writes a fresh certificate and key for `identity` over its files, as a rotated Secret would. */
  rotate(identity: string): Promise<void>;
  /** TLS that trusts this CA but presents no certificate: a caller that is not one of us. */
  withoutCertificate(server: string): grpc.ChannelCredentials;
  /** Removes the files. */
  remove(): void;
}

/**
 * Makes a CA (ECDSA P-256, valid a few days) in `dir` (a fresh temporary folder by default).
 * Nothing it signs is ever trusted anywhere but in this run.
 */
export async function createThrowawayCa(
  options: { dir?: string; reloadIntervalMs?: number } = {},
): Promise<ThrowawayCa> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'calsync-ca-'));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caKeys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const notBefore = new Date(Date.now() - 3600 * 1000);
  const notAfter = new Date(Date.now() + 7 * dayMs);
  const caCertificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=calsync throwaway CA ${randomBytes(3).toString('hex')}`,
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const caFile = join(dir, 'ca.crt');
  writeFileSync(caFile, `${caCertificate.toString('pem')}\n`, { mode: 0o600 });
  const caPem = readFileSync(caFile);
  const reloadIntervalMs = options.reloadIntervalMs ?? 1_000;
  const issued = new Map<string, Promise<CertificateFiles>>();

  async function issue(identity: string): Promise<CertificateFiles> {
    const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const certificate = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${identity}`,
      issuer: caCertificate.subject,
      notBefore,
      notAfter,
      signingKey: caKeys.privateKey,
      publicKey: keys.publicKey,
      signingAlgorithm: algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([
          { type: 'dns', value: identity },
          { type: 'dns', value: 'localhost' },
          { type: 'ip', value: '127.0.0.1' },
        ]),
        await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
      ],
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
    const folder = writeLikeASecretVolume(join(dir, identity), {
      'tls.crt': `${certificate.toString('pem')}\n`,
      'tls.key': pem('PRIVATE KEY', pkcs8),
    });
    return { certFile: join(folder, 'tls.crt'), keyFile: join(folder, 'tls.key'), caFile };
  }

  const files = (identity: string) => {
    let pending = issued.get(identity);
    if (!pending) {
      pending = issue(identity);
      issued.set(identity, pending);
    }
    return pending;
  };

  return {
    dir,
    caFile,
    files,
    async env(identity) {
      const { certFile, keyFile } = await files(identity);
      return {
        GRPC_TLS_CERT_FILE: certFile,
        GRPC_TLS_KEY_FILE: keyFile,
        GRPC_TLS_CA_FILE: caFile,
        GRPC_TLS_RELOAD_INTERVAL_MS: String(reloadIntervalMs),
      };
    },
    async security(identity) {
      return { mode: 'mtls', reloadIntervalMs, ...(await files(identity)) };
    },
    async rotate(identity) {
      await files(identity);
      const rotated = issue(identity);
      issued.set(identity, rotated);
      await rotated;
    },
    withoutCertificate(server) {
      return grpc.credentials.createSsl(caPem, null, null, {
        checkServerIdentity: (_host, certificate) => checkPeer(certificate, server),
      });
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * Writes files the way the kubelet updates a mounted Secret: into a fresh folder, then one atomic
 * rename of the `..data` link, so a reader never sees a new certificate beside an old key.
 */
function writeLikeASecretVolume(folder: string, contents: Record<string, string>): string {
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  const version = `..${Date.now()}_${randomBytes(4).toString('hex')}`;
  mkdirSync(join(folder, version), { mode: 0o700 });
  for (const [name, text] of Object.entries(contents))
    writeFileSync(join(folder, version, name), text, { mode: 0o600 });
  const previous = existsSync(join(folder, '..data')) ? readlinkSync(join(folder, '..data')) : undefined;
  symlinkSync(version, join(folder, '..data_tmp'));
  renameSync(join(folder, '..data_tmp'), join(folder, '..data'));
  for (const name of Object.keys(contents)) {
    if (!existsSync(join(folder, name))) symlinkSync(join('..data', name), join(folder, name));
  }
  if (previous) rmSync(join(folder, previous), { recursive: true, force: true });
  return folder;
}

function serial(): string {
  // Positive (high bit clear) and never zero.
  return `01${randomBytes(15).toString('hex')}`;
}

function pem(label: string, base64: string): string {
  return `-----BEGIN ${label}-----\n${base64.match(/.{1,64}/g)!.join('\n')}\n-----END ${label}-----\n`;
}

let testCa: Promise<ThrowawayCa> | undefined;

/**
 * The CA of this test process, made on first use and removed at exit: every service and client
 * a test starts presents a certificate from it.
 */
export function testGrpcCa(): Promise<ThrowawayCa> {
  testCa ??= createThrowawayCa().then((ca) => {
    process.once('exit', () => ca.remove());
    return ca;
  });
  return testCa;
}

/** Mutual TLS as `identity` (a calsync service by default: the gateway) under this test process's CA. */
export async function testGrpcSecurity(identity: string = grpcIdentities.gateway): Promise<GrpcSecurity> {
  return (await testGrpcCa()).security(identity);
}

/** GRPC_TLS_* variables for a service presenting `identity` under this test process's CA. */
export async function testGrpcEnv(identity: string): Promise<Record<string, string>> {
  return (await testGrpcCa()).env(identity);
}
