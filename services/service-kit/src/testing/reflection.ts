import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

interface ListServicesResponse {
  listServicesResponse?: { service: { name: string }[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

/** The services `grpc.reflection.v1` lists at `address` (host:port), sorted by name. */
export async function reflectedServices(
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): Promise<string[]> {
  const definition = protoLoader.loadSync(
    require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto'),
  );
  const Reflection = grpc.makeGenericClientConstructor(
    definition['grpc.reflection.v1.ServerReflection'] as grpc.ServiceDefinition,
    'ServerReflection',
  );
  const client = new Reflection(address, credentials);
  try {
    const call = client.ServerReflectionInfo({ deadline: Date.now() + 5_000 }) as grpc.ClientDuplexStream<
      { listServices: string },
      ListServicesResponse
    >;
    const response = await new Promise<ListServicesResponse>((resolve, reject) => {
      call.once('data', resolve);
      call.once('error', reject);
      call.write({ listServices: '*' });
    });
    call.end();
    if (!response.listServicesResponse) throw new Error(`reflection refused: ${response.errorResponse?.errorMessage}`);
    return response.listServicesResponse.service.map((service) => service.name).sort();
  } finally {
    client.close();
  }
}
