/* The program the spawners exec: does nothing, built -static so exec cost is the
 * kernel's (and audit's), not the dynamic loader's. */
int main(void) { return 0; }
