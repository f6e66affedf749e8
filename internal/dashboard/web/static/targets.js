// targets.js: targets, whether they answer, and their capability matrix.
import { $, init, fragment } from './app.js';

await init();
const content = $('#content');
await fragment(content, content.dataset.frag);
