import { join } from 'node:path';

/** Path of the FileDescriptorSet of every calsync proto, for gRPC server reflection. */
export const descriptorSetPath = join(__dirname, '..', 'descriptor.binpb');
