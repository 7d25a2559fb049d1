/**
 * The hostile-client suite against the deno engine (see `_hostile.ts`). Every bound is stated here: RSS growth in MB
 * over the server's baseline after each attack.
 *
 * @module
 */

import { hostileSuite } from "./_hostile.ts";

hostileSuite("deno", { quiet: 24, pingFlood: 32, fragments: 64, bodyless: 48 });
