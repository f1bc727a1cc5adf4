export function copyDemoPage(rootDir: string, demoDir: string): void;
export function writeDemoConfig(options: {
  demoDir: string;
  gatewayUrl: string;
  simulatorUrl: string;
  jwtSecret: string;
}): Promise<
  {
    id: string;
    name: string;
    email: string;
    token: string;
    calendly: { uri: string; uuid: string; personal_access_token: string };
  }[]
>;
