/** An `.html` file imported as its text: wrangler's default rule for a Text module, and build.mjs's loader. */
declare module "*.html" {
  const text: string;
  export default text;
}
