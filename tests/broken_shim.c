/* broken_shim.c: a libbodhi_torch.so that cannot load, as a shim rebuilt against the wrong
 * libraries would not: it calls a function nothing defines, so dlopen's RTLD_NOW refuses
 * it (test_cli: bodhi names it rather than taking the build tree's shim in its place). */
extern void bdt_nothing_defines_this(void);

void bd_broken_shim_calls(void);
void bd_broken_shim_calls(void)
{
    bdt_nothing_defines_this();
}
