import type avro from 'avsc';

/**
 * Schema evolution for one reader type: the avsc resolver from each writer type, made once
 * per writer. A writer the reader cannot read gives the Error, also remembered.
 */
export class ResolverCache {
  private readonly resolvers = new Map<avro.Type, avro.Resolver | Error>();

  constructor(private readonly reader: avro.Type) {}

  resolverFor(writer: avro.Type): avro.Resolver | Error {
    let resolver = this.resolvers.get(writer);
    if (resolver === undefined) {
      try {
        resolver = this.reader.createResolver(writer);
      } catch (error) {
        resolver = error as Error;
      }
      this.resolvers.set(writer, resolver);
    }
    return resolver;
  }
}
