// Runs the real Monitor with a stand-in program as its web process (argv: config file, web
// program, its arguments). Only the security tests use it, to speak to the monitor and the
// workers as a compromised web process would.

import { loadConfig } from '../../helper/config';
import { Logger } from '../../common/log';
import { Monitor } from '../../helper/monitor';

const [configPath, webEntry, ...webArgs] = process.argv.slice(2);
const config = loadConfig(configPath!);
new Monitor(config, new Logger('monitor', config.log.level), { entry: webEntry!, args: webArgs }).start();
