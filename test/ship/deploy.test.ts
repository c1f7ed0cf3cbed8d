/**
 * deploy/: the container image's root filesystem, assembled by the Dockerfile's own script and run for real in a
 * chroot (no Docker engine here), and the Kubernetes and systemd files checked against lb's own config code.
 * The chroot part needs root (chroot, mount), as CI runs.
 */
import { environmentLayer } from "../../src/config/environment.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { readConfigFile, resolveConfig } from "../../src/config/load.ts";
import type { Config } from "../../src/config/types.ts";
import { type TestDnsServer, startDnsServer } from "../dns-server.ts";
import { type LbProcess, ROOT, runCommand, spawnLb, startBackend } from "../helpers.ts";

const DEPLOY = `${ROOT}deploy/`;
const BINARY = `${ROOT}dist/lb`;
const read = (path: string) => readFileSync(`${DEPLOY}${path}`, "utf8");

/** deploy/rootfs.txt (or the arm64 image's list): one path a line, `#` comments. */
function rootfsPaths(list = "rootfs.txt"): string[] {
  return read(list)
    .split("\n")
    .map((line) => line.replace(/#.*/, "").trim())
    .filter(Boolean);
}

/** The files `ldd` says a binary loads (linux-vdso has none). */
function lddPaths(binary: string): string[] {
  const ldd = Bun.spawnSync(["ldd", binary]);
  if (!ldd.success) throw new Error(`ldd ${binary} failed: ${ldd.stderr.toString()}`);
  return ldd.stdout
    .toString()
    .split("\n")
    .flatMap((line) => {
      const linked = /=>\s*(\S+)/.exec(line);
      if (linked) return [linked[1] === "not" ? `${line.trim()}` : linked[1]!];
      const direct = /^\s*(\/\S+)/.exec(line);
      return direct ? [direct[1]!] : [];
    });
}

interface Instruction {
  keyword: string;
  args: string;
}

/** A Dockerfile's stages, each a list of instructions (continuation lines joined, comments dropped). */
function dockerfileStages(text: string): Instruction[][] {
  const lines = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const stages: Instruction[][] = [];
  for (const line of lines) {
    const [, keyword, args] = /^(\S+)\s*(.*)$/.exec(line)!;
    const instruction = { keyword: keyword!.toUpperCase(), args: args! };
    if (instruction.keyword === "FROM") stages.push([]);
    stages.at(-1)?.push(instruction);
  }
  return stages;
}

const DOCKERFILE = dockerfileStages(read("Dockerfile"));
const FINAL = DOCKERFILE.at(-1)!;
const finalArgs = (keyword: string) => FINAL.filter((i) => i.keyword === keyword).map((i) => i.args);
/** The exec-form (JSON array) command of ENTRYPOINT, or of HEALTHCHECK after its options. */
const execForm = (args: string): string[] => JSON.parse(/(\[.*\])\s*$/.exec(args)![1]!);
/** USER uid[:gid] of the final stage. */
const imageUid = () => Number(finalArgs("USER").at(-1)!.split(":")[0]);

describe("the container image's root filesystem, run in a chroot", () => {
  let root = "";
  const mounts: string[] = [];
  const running = new Set<LbProcess>();
  let dns: TestDnsServer | undefined;

  beforeAll(async () => {
    const missing = ["chroot", "mount", "umount", "ldd"].filter((tool) => !Bun.which(tool));
    if (process.getuid?.() !== 0 || missing.length) {
      throw new Error(
        `test/ship/deploy.test.ts runs dist/lb in a chroot with /proc mounted, which needs root and chroot, mount, umount and ldd` +
          ` (uid ${process.getuid?.()}${missing.length ? `, missing ${missing.join(", ")}` : ""}): run it as root, as CI does`,
      );
    }
    // Built from the current source every time (about a second): a stale dist/lb would test old code.
    const build = Bun.spawn(["bun", `${ROOT}build.ts`], { cwd: ROOT, stdout: "ignore", stderr: "inherit" });
    expect(await build.exited).toBe(0);
    dns = await startDnsServer();
    root = mkdtempSync(join(tmpdir(), "lb-rootfs-"));
    // The Dockerfile's rootfs stage runs the same script on the same list (for amd64).
    const stage = await runCommand([`${DEPLOY}rootfs.txt`, BINARY, root], ["sh", `${DEPLOY}stage-rootfs.sh`]);
    if (stage.code !== 0) throw new Error(`deploy/stage-rootfs.sh failed: ${stage.stderr}`);
    // Read-only, as deployment.yaml's readOnlyRootFilesystem has it, and with /proc, as every runtime mounts it.
    mount(["--bind", root, root], root);
    mount(["-o", "remount,bind,ro", root, root]);
    mount(["-t", "proc", "proc", `${root}/proc`], `${root}/proc`);
  }, 60_000);

  afterAll(async () => {
    for (const lb of running) await lb.kill("SIGKILL");
    dns?.stop();
    const failed = mounts.reverse().filter((path) => !Bun.spawnSync(["umount", path]).success);
    // Never delete a tree that still has /proc (or the bind) mounted in it.
    if (failed.length) throw new Error(`could not unmount ${failed.join(", ")}; ${root} is left in place`);
    if (root) rmSync(root, { recursive: true, force: true });
  });

  function mount(args: string[], mountedAt?: string) {
    const result = Bun.spawnSync(["mount", ...args]);
    if (!result.success) throw new Error(`mount ${args.join(" ")} failed: ${result.stderr.toString().trim()}`);
    if (mountedAt) mounts.push(mountedAt);
  }

  /** `chroot --userspec=<the image's USER> <root> <command>`: a process as the image would run it. */
  const inImage = (command: string[]) => ["chroot", `--userspec=${imageUid()}:${imageUid()}`, root, ...command];

  async function startInImage(args: string[]): Promise<{ lb: LbProcess; admin: string }> {
    const lb = await spawnLb(args, inImage(execForm(finalArgs("ENTRYPOINT")[0]!)));
    running.add(lb);
    const listening = lb.stderr.find((line) => line.includes("lb listening on"))!;
    const admin = /admin http:\/\/(\S+?:\d+)/.exec(listening)?.[1];
    if (!admin) throw new Error(`no admin address in: ${listening}`);
    return { lb, admin };
  }

  /** The Dockerfile's HEALTHCHECK command, pointed at this lb's admin address, run in the image. */
  async function healthcheck(admin: string) {
    const command = execForm(finalArgs("HEALTHCHECK")[0]!);
    const at = command.indexOf("--admin");
    expect(at).toBeGreaterThan(0);
    command[at + 1] = admin;
    return runCommand([], inImage(command));
  }

  test("the staged root holds /lb, the listed libraries, user lb and nothing else", () => {
    const listed = rootfsPaths();
    const files = Bun.spawnSync(["find", root, "-xdev", "-type", "f"]).stdout.toString().trim().split("\n").map((f) => f.slice(root.length)).sort();
    expect(files).toEqual(["/etc/group", "/etc/passwd", "/lb", ...listed].sort());
    expect(readFileSync(`${root}/etc/passwd`, "utf8")).toContain(`lb:x:${imageUid()}:${imageUid()}:`);
  });

  test("lb runs from it as the image's user, proxies, passes the HEALTHCHECK, and stops cleanly", async () => {
    const backend = startBackend("in-image");
    try {
      const { lb, admin } = await startInImage(["--port", "0", "--host", "127.0.0.1", "--admin", "127.0.0.1:0", backend.url]);
      const response = await fetch(`${lb.url}/hello`);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("backend in-image");
      expect(backend.seen.at(-1)?.path).toBe("/hello");
      // chroot execs lb in place: this is lb's own process, running as the Dockerfile's USER.
      const status = readFileSync(`/proc/${lb.proc.pid}/status`, "utf8");
      expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe(String(imageUid()));

      const check = await healthcheck(admin);
      expect(check.code).toBe(0);
      expect(check.stdout).toContain(`127.0.0.1:${backend.port}`);

      expect(await lb.kill("SIGTERM")).toBe(0);
      running.delete(lb);
      const after = await healthcheck(admin);
      expect(after.code).not.toBe(0);
      expect(after.stderr).toContain("cannot reach lb's admin API");
    } finally {
      await backend.stop();
    }
  }, 15_000);

  test("DNS discovery (configmap.yaml's resolve backend) works in the image", async () => {
    const server = dns!;
    const backend = startBackend("found-by-dns");
    server.records.set("app.test", ["127.0.0.1"]);
    try {
      const { lb } = await startInImage(["--port", "0", "--host", "127.0.0.1", "--dns-server", server.address, `http://app.test:${backend.port}#resolve`]);
      expect(await (await fetch(`${lb.url}/`)).text()).toBe("backend found-by-dns");
      expect(await lb.kill("SIGTERM")).toBe(0);
      running.delete(lb);
    } finally {
      await backend.stop();
    }
  }, 15_000);
});

describe("deploy/rootfs.txt and deploy/Dockerfile", () => {
  test("rootfs.txt lists every library ldd finds for dist/lb, each present on this machine", () => {
    if (!existsSync(BINARY)) throw new Error("dist/lb is missing: run bun run build (the chroot tests above build it)");
    const listed = rootfsPaths();
    expect(listed.length).toBeGreaterThan(0);
    expect(listed.filter((path) => !existsSync(path))).toEqual([]);
    const needed = lddPaths(BINARY);
    expect(needed).toContain("/lib/x86_64-linux-gnu/libc.so.6");
    expect(needed.filter((path) => !listed.includes(path))).toEqual([]);
  });

  test("the final stage is FROM scratch, non-root, with EXPOSE, ENTRYPOINT /lb, HEALTHCHECK; the build reads rootfs.txt", () => {
    expect(DOCKERFILE.length).toBeGreaterThanOrEqual(2);
    expect(FINAL[0]!.args).toBe("scratch");
    const user = finalArgs("USER").at(-1);
    expect(user).toBeDefined();
    expect(imageUid()).toBeGreaterThan(0);
    expect(finalArgs("EXPOSE").join(" ").split(/\s+/)).toEqual(expect.arrayContaining(["8000", "7019"]));
    expect(execForm(finalArgs("ENTRYPOINT")[0]!)).toEqual(["/lb"]);
    expect(execForm(finalArgs("HEALTHCHECK")[0]!)[0]).toBe("/lb");
    expect(finalArgs("CMD")).toHaveLength(1);
    const build = DOCKERFILE.slice(0, -1).flat();
    const runs = build.filter((i) => i.keyword === "RUN").map((i) => i.args);
    expect(runs.some((r) => r.includes("stage-rootfs.sh") && r.includes("deploy/rootfs.txt"))).toBe(true);
    expect(runs.some((r) => r.includes("npm install -g") && r.includes("bun@"))).toBe(true);
    expect(runs.some((r) => r.includes("bun install --frozen-lockfile"))).toBe(true);
    // Bun pinned to the version CI installs.
    const ciVersion = /BUN_VERSION=(\S+)/.exec(readFileSync(`${ROOT}.ci/run`, "utf8"))![1];
    expect(build.find((i) => i.keyword === "ARG" && i.args.startsWith("BUN_VERSION="))?.args).toBe(`BUN_VERSION=${ciVersion}`);
  });

  // No arm64 machine here: the list is checked for shape, and against ldd when the arm64 image is built.
  test("for arm64, Bun runs on the build machine's platform and rootfs-arm64.txt lists the same libraries at arm64 paths", () => {
    const [buildStage, rootfsStage] = DOCKERFILE;
    expect(buildStage![0]!.args).toStartWith("--platform=$BUILDPLATFORM ");
    expect(rootfsStage!.some((i) => i.keyword === "RUN" && i.args.includes("arm64) list=deploy/rootfs-arm64.txt"))).toBe(true);
    const arm64 = rootfsPaths("rootfs-arm64.txt");
    const libraries = (paths: string[]) => paths.map((path) => basename(path)).filter((name) => !name.startsWith("ld-linux")).sort();
    expect(libraries(arm64)).toEqual(libraries(rootfsPaths()));
    expect(arm64.filter((path) => !/^\/lib\/(aarch64-linux-gnu\/lib[a-z]+\.so\.\d+|ld-linux-aarch64\.so\.1)$/.test(path))).toEqual([]);
  });
});

/** Every document of every YAML file in deploy/kubernetes/, by file name. */
function kubernetesDocuments(): Map<string, K8s[]> {
  const dir = `${DEPLOY}kubernetes/`;
  const files = new Map<string, K8s[]>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".yaml")).sort()) {
    const docs = readFileSync(dir + file, "utf8")
      .split(/^---$/m)
      .map((text) => Bun.YAML.parse(text) as K8s | null)
      .filter((doc): doc is K8s => doc !== null);
    files.set(file, docs);
  }
  return files;
}

/** Manifests are untyped YAML: the tests check their shape themselves. */
type K8s = any;

describe("deploy/kubernetes", () => {
  const files = kubernetesDocuments();
  const all = [...files.values()].flat();
  const one = (file: string, kind: string): K8s => {
    const doc = files.get(file)?.find((d) => d.kind === kind);
    if (!doc) throw new Error(`no ${kind} in deploy/kubernetes/${file}`);
    return doc;
  };
  const deployment = one("deployment.yaml", "Deployment");
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  const secret = one("secret.yaml", "Secret");
  const configMap = one("configmap.yaml", "ConfigMap");
  const headless = one("backends-headless-service.yaml", "Service");
  const service = one("service.yaml", "Service");
  /** A container port by name or number. */
  const portNumber = (port: string | number) => (typeof port === "number" ? port : container.ports.find((p: K8s) => p.name === port)?.containerPort);

  /** The ConfigMap's lb.toml, through lb's own loader, with the token the Secret gives. */
  let config: Config;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "lb-configmap-"));
    try {
      const configPath = container.args[container.args.indexOf("--config") + 1] as string;
      const file = join(dir, basename(configPath));
      writeFileSync(file, configMap.data[basename(configPath)]);
      config = resolveConfig([await readConfigFile(file), environmentLayer({ LB_ADMIN_TOKEN: secret.stringData.token })], { stdoutIsTTY: false });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("every document has apiVersion, kind and metadata.name", () => {
    expect([...files.keys()]).toEqual(
      expect.arrayContaining(["backends-headless-service.yaml", "configmap.yaml", "deployment.yaml", "secret.yaml", "service.yaml"]),
    );
    for (const doc of all) {
      expect(typeof doc.apiVersion).toBe("string");
      expect(typeof doc.kind).toBe("string");
      expect(typeof doc.metadata?.name).toBe("string");
    }
  });

  test("the Deployment: 2 replicas, image and args, probes on the admin port, requests and limits, the image's user", () => {
    expect(deployment.spec.replicas).toBe(2);
    expect(deployment.spec.template.metadata.labels).toMatchObject(deployment.spec.selector.matchLabels);
    expect(container.image).toMatch(/\S+:\S+/);
    expect(container.args).toContain("--config");
    expect(container.readinessProbe.httpGet.path).toBe("/readyz");
    expect(container.livenessProbe.httpGet.path).toBe("/healthz");
    for (const probe of [container.readinessProbe, container.livenessProbe]) expect(portNumber(probe.httpGet.port)).toBe(config.admin!.port);
    expect(portNumber("http")).toBe(config.port);
    expect(container.resources.requests).toMatchObject({ cpu: expect.anything(), memory: expect.anything() });
    expect(container.resources.limits.memory).toBeDefined();
    expect(pod.securityContext.runAsUser).toBe(imageUid());
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true); // the chroot test runs lb on a read-only root
  });

  test("the ServiceMonitor scrapes /metrics on the admin port with the token from the lb-admin Secret", () => {
    const monitor = one("servicemonitor.yaml", "ServiceMonitor");
    const adminService = one("servicemonitor.yaml", "Service");
    const endpoint = monitor.spec.endpoints[0];
    expect(endpoint).toMatchObject({ port: "admin", path: "/metrics" });
    expect(endpoint.authorization.credentials).toEqual({ name: secret.metadata.name, key: "token" });
    expect(Object.keys(secret.stringData)).toContain("token");
    expect(adminService.spec.ports[0].name).toBe("admin");
    expect(portNumber(adminService.spec.ports[0].targetPort)).toBe(config.admin!.port);
    expect(adminService.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(adminService.spec.selector).toMatchObject(deployment.spec.selector.matchLabels);
  });

  test("the grace period outlasts preStop plus lb's drain; preStop needs nothing the image lacks", () => {
    const preStop = container.lifecycle.preStop;
    expect(preStop.exec).toBeUndefined(); // the image has no shell and no sleep binary
    expect(preStop.sleep.seconds).toBeGreaterThan(0);
    expect(config.drainTimeout).toBe(10_000);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(preStop.sleep.seconds + config.drainTimeout / 1000);
  });

  test("the config is valid lb config: DNS discovery of the headless Service, admin reachable by the kubelet", () => {
    expect(config.admin!.host).toBe("0.0.0.0");
    const discovered = config.backends.find((b) => b.resolve);
    expect(discovered).toBeDefined();
    const url = new URL(discovered!.url);
    expect(url.hostname).toMatch(new RegExp(`^${headless.metadata.name}\\.[a-z0-9-]+\\.svc\\.cluster\\.local$`));
    expect(headless.spec.ports.map((p: K8s) => p.port)).toContain(Number(url.port));
    // The ConfigMap mounted where --config points.
    const configPath = container.args[container.args.indexOf("--config") + 1] as string;
    const mounted = container.volumeMounts.find((m: K8s) => configPath.startsWith(`${m.mountPath}/`));
    expect(pod.volumes.find((v: K8s) => v.name === mounted.name).configMap.name).toBe(configMap.metadata.name);
  });

  test("the token comes from the Secret; the Services select the right pods", () => {
    const env = container.env.find((e: K8s) => e.name === "LB_ADMIN_TOKEN");
    expect(env.valueFrom.secretKeyRef.name).toBe(secret.metadata.name);
    expect(secret.stringData[env.valueFrom.secretKeyRef.key]).toBeDefined();
    expect(headless.spec.clusterIP).toBe("None");
    expect(Object.keys(service.spec.selector).length).toBeGreaterThan(0);
    expect(deployment.spec.template.metadata.labels).toMatchObject(service.spec.selector);
    expect(portNumber(service.spec.ports[0].targetPort)).toBe(config.port);
    const pdb = one("deployment.yaml", "PodDisruptionBudget");
    expect(deployment.spec.template.metadata.labels).toMatchObject(pdb.spec.selector.matchLabels);
  });
});

describe("deploy/systemd/lb.service", () => {
  const unit = new Map<string, string[]>();
  let section = "";
  for (const raw of read("systemd/lb.service").split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) section = header[1]!;
    else {
      const [key, ...value] = line.split("=");
      const name = `${section}.${key}`;
      unit.set(name, [...(unit.get(name) ?? []), value.join("=")]);
    }
  }
  const service = (key: string) => unit.get(`Service.${key}`)?.at(-1);
  /** systemd time spans as used here: "30", "30s", "1min", "1min 30s". */
  const seconds = (span: string) =>
    span.split(/\s+/).reduce((sum, part) => {
      const [, n, u = "s"] = /^(\d+)(ms|s|min|m|h)?$/.exec(part)!;
      return sum + Number(n) * ({ ms: 0.001, s: 1, min: 60, m: 60, h: 3600 } as Record<string, number>)[u]!;
    }, 0);

  test("runs lb with its config, hardened, with reload by SIGHUP and a stop timeout longer than the drain", () => {
    expect(service("ExecStart")).toBe("/usr/local/bin/lb --config /etc/lb/lb.toml");
    expect(service("DynamicUser")).toBe("yes");
    expect(service("AmbientCapabilities")).toContain("CAP_NET_BIND_SERVICE");
    expect(service("ProtectSystem")).toBe("strict");
    expect(service("ProtectHome")).toBe("yes");
    expect(service("PrivateTmp")).toBe("yes");
    expect(service("NoNewPrivileges")).toBe("yes");
    expect(service("MemoryDenyWriteExecute")).toBeUndefined(); // Bun's JIT needs writable-then-executable memory
    expect(service("ExecReload")).toMatch(/kill -HUP \$MAINPID$/);
    expect(service("KillSignal")).toBe("SIGTERM");
    expect(service("Restart")).toBe("on-failure");
    expect(service("EnvironmentFile")).toMatch(/^-?\/etc\/lb\//);
    const drain = resolveConfig([{ source: "test", values: { backends: ["http://127.0.0.1:1"] } }], { stdoutIsTTY: false }).drainTimeout / 1000;
    expect(seconds(service("TimeoutStopSec")!)).toBeGreaterThan(drain);
    expect(unit.get("Install.WantedBy")).toEqual(["multi-user.target"]);
  });
});
