// Signs IPA modules (detached Ed25519 signatures, see src/ipa/ipa_module.ts).
//
//   deno task ipa-sign keygen --out examples/keys/example_ipa
//       writes <out>.key (PKCS #8, base64) and <out>.pub (raw, base64; read
//       it with loadIpaPublicKey for IpaManagerOptions.trustedKeys)
//   deno task ipa-sign sign <module> --key <file.key>
//       writes <module>.sign (64 raw bytes)
//   deno task ipa-sign verify <module> --pub <file.pub>
//       exits 0 if the signature verifies, 1 otherwise
import { parseArgs } from "@std/cli/parse-args";
import {
  generateIpaSigningKey,
  loadIpaPublicKey,
  signaturePath,
  signIpaModule,
  verifyIpaModule,
} from "../mod.ts";

const b64 = {
  encode: (b: Uint8Array) => btoa(String.fromCharCode(...b)),
  decode: (s: string) =>
    Uint8Array.from(atob(s.trim()), (c) => c.charCodeAt(0)),
};

const USAGE = `usage:
  ipa_sign keygen --out <prefix>
  ipa_sign sign <module> --key <prefix.key>
  ipa_sign verify <module> --pub <prefix.pub>`;

const args = parseArgs(Deno.args, {
  string: ["out", "key", "pub"],
  boolean: ["help"],
});
const [command, module] = args._.map(String);

function fail(message: string): never {
  console.error(message);
  Deno.exit(2);
}

if (args.help || command === undefined) {
  console.log(USAGE);
} else if (command === "keygen") {
  if (!args.out) fail(`keygen needs --out\n${USAGE}`);
  const { privateKey, publicKey } = await generateIpaSigningKey();
  await Deno.writeTextFile(`${args.out}.key`, b64.encode(privateKey) + "\n", {
    mode: 0o600,
  });
  await Deno.writeTextFile(`${args.out}.pub`, b64.encode(publicKey) + "\n");
  console.log(`wrote ${args.out}.key and ${args.out}.pub`);
} else if (command === "sign") {
  if (!module || !args.key) fail(`sign needs a module and --key\n${USAGE}`);
  const key = b64.decode(await Deno.readTextFile(args.key));
  const sig = await signIpaModule(await Deno.readFile(module), key);
  await Deno.writeFile(signaturePath(module), sig);
  console.log(`wrote ${signaturePath(module)}`);
} else if (command === "verify") {
  if (!module || !args.pub) fail(`verify needs a module and --pub\n${USAGE}`);
  const pub = await loadIpaPublicKey(args.pub);
  const ok = await verifyIpaModule(
    await Deno.readFile(module),
    await Deno.readFile(signaturePath(module)).catch(() => new Uint8Array(0)),
    [pub],
  );
  console.log(ok ? "signature verifies" : "signature does NOT verify");
  Deno.exit(ok ? 0 : 1);
} else {
  fail(`unknown command ${command}\n${USAGE}`);
}
