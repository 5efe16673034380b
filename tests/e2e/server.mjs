// Starts `slm serve` on a free loopback port for an end-to-end test and stops it
// with SIGTERM, expecting the graceful exit (code 0).
import { spawn } from "node:child_process";

export async function startServer(slm, model, extraArgs = []) {
  const proc = spawn(slm, ["serve", model, "--host", "127.0.0.1", "--port", "0", "-t", "1", ...extraArgs], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("slm serve did not start in 30 s:\n" + log)), 30000);
    proc.stderr.on("data", (d) => {
      log += d;
      const m = /serving .* on (http:\/\/[0-9.]+:[0-9]+)/.exec(log);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on("exit", (code) => { clearTimeout(timer); reject(new Error(`slm serve exited with ${code}:\n${log}`)); });
  });
  return {
    url,
    log: () => log,
    // SIGTERM drains and exits 0; anything else is a failure.
    stop: () => new Promise((resolve, reject) => {
      proc.removeAllListeners("exit");
      const timer = setTimeout(() => { proc.kill("SIGKILL"); reject(new Error("slm serve ignored SIGTERM for 40 s")); }, 40000);
      proc.on("exit", (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(new Error(`slm serve exited with code ${code} signal ${signal} after SIGTERM:\n${log}`));
      });
      proc.kill("SIGTERM");
    }),
  };
}
